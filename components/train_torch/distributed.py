"""The MLP trained data-parallel (DDP over gloo): the program every process runs, and the step's launcher.

`python -m components.train_torch.distributed` is what `torchrun` starts once per process, here and in a
Kubeflow Trainer TrainJob alike (both set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT): each process
joins the group, reads the split, fits `core.build_model`'s estimator (its mini-batch loop shards every pass
with a DistributedSampler and averages gradients with DDP), and rank 0 saves the model in the format every
candidate is saved in. `torchrun_fit` is train_candidate's `fit` that starts `torchrun` in the step's pod
and reads the saved model back, so logging, evaluation and serving are those of any candidate.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch.distributed as dist

from components.common import modeling
from components.common.candidate import Fit, load_profile_file
from components.common.features import split_target
from components.common.profile import ReferenceProfile
from components.train_torch.core import WEIGHTS, build_model

# The build_model keywords a search may set (components/search/spaces.py), passed on to every rank.
SEARCHED = ("hidden", "learning_rate", "weight_decay", "class_weight")


def weights_digest(model: Any) -> str:
    """Return a short digest of the fitted network's weights: equal in every process when DDP kept them in step."""
    state = model.steps[-1][1].__getstate__() if hasattr(model, "steps") else model.__getstate__()
    digest = hashlib.sha256()
    for name, value in sorted(state[WEIGHTS].items()):
        digest.update(name.encode() + np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()[:16]


def train(arguments: argparse.Namespace) -> None:
    """Fit in this process as one rank of the group torchrun set up; rank 0 saves the model."""
    dist.init_process_group("gloo")
    try:
        profile = load_profile_file(arguments.profile)
        features, labels = split_target(pd.read_parquet(arguments.train), profile)
        searched = json.loads(arguments.params)
        model = build_model(profile, arguments.seed, "cpu", arguments.max_passes, arguments.time_budget_s, **searched)
        model.fit(features, labels)
        rank = dist.get_rank()
        print(f"train torch: rank {rank} of {dist.get_world_size()} weights {weights_digest(model)}", flush=True)
        if rank == 0:
            modeling.save_model(model, arguments.out, features, profile, "torch", ["torch"])
        dist.barrier()
    finally:
        dist.destroy_process_group()


def torchrun_fit(processes: int, seed: int, max_passes: int, time_budget_s: float) -> Fit:
    """Return train_candidate's `fit` that trains with `processes` torchrun processes in this pod (gloo).

    Every rank builds its estimator from these same settings and the searched parameters of the unfitted
    model given to `fit` (which itself stays here).
    """

    def fit(model: Any, location: str, profile: ReferenceProfile) -> tuple[Any, pd.DataFrame, int]:
        learner = model.steps[-1][1] if hasattr(model, "steps") else model
        searched = {name: learner.get_params()[name] for name in SEARCHED if name in learner.get_params()}
        with tempfile.TemporaryDirectory(prefix="plinth-ddp-") as tmp:
            profile_path, out = Path(tmp) / "profile.json", Path(tmp) / "model"
            profile_path.write_text(json.dumps(profile.to_dict()))
            command = [
                *(sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"),
                *("-m", __name__, "--train", location, "--profile", str(profile_path), "--out", str(out)),
                *("--seed", str(seed), "--max-passes", str(max_passes), "--time-budget-s", str(time_budget_s)),
                *("--params", json.dumps(searched)),
            ]
            subprocess.run(command, check=True)
            fitted = modeling.load_model(str(out))
        features, _ = split_target(pd.read_parquet(location), profile)
        return fitted, features, len(features)

    return fit


def main(argv: list[str] | None = None) -> int:
    """Parse the flags torchrun passes on and train this rank."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, help="training split (Parquet)")
    parser.add_argument("--profile", required=True, help="validated profile (JSON)")
    parser.add_argument("--out", required=True, help="where rank 0 saves the model (MLflow sklearn format)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--max-passes", type=int, default=20, help="most passes over the rows (default: %(default)s)")
    parser.add_argument("--time-budget-s", type=float, default=600.0, help="seconds (default: %(default)s)")
    parser.add_argument("--params", default="{}", help="searched build_model keywords, as JSON (default: none)")
    train(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
