"""The training steps as one plain Python process, no kfp: the baseline that measures kfp's overhead.

Calls the same step entry points (`components.<step>.core.run`) in the same order as the pipeline, with
files in a temporary directory instead of KFP artifacts. `python -m pipelines.run_plain` trains into $PLINTH_HOME.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from components import __version__
from components.common.candidate import train_candidate
from components.common.device import cuda_available
from components.common.profile import ReferenceProfile
from components.common.state import local_tracking_uri, plinth_home
from components.evaluate.core import run as evaluate
from components.gate.config import GateConfig
from components.gate.core import run as gate
from components.ingest.core import run as ingest
from components.register.core import run as register
from components.split.core import run as split
from components.train_hgb.core import as_saved as hgb_saved
from components.train_hgb.core import build_model as hgb_model
from components.train_sklearn.core import build_model as sklearn_model
from components.train_torch.core import build_model as torch_model
from components.train_xgboost.core import build_model as xgboost_model
from components.train_xgboost.core import for_cpu_inference
from components.validate.core import Thresholds
from components.validate.core import run as validate
from pipelines.run_local import git_commit
from pipelines.training.pipeline import DEFAULT_MODEL_NAME, PIPELINE_NAME

TARGET = "target"
# The line the bench reads the per-step wall times from.
STEP_TIMES_PREFIX = "plain step seconds: "


class StepClock:
    """Wall time per step, named as kfp.local names the pipeline's tasks, for the bench's per-step table."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the block as step `name`."""
        started = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - started


def run_steps(tracking_uri: str, work: Path, clock: StepClock, seed: int = 42) -> str:
    """Run every step in this process, timing each on `clock`; return the gate's decision reason."""
    paths = {name: str(work / name) for name in ("data", "report", "profile", "train", "test")}
    with clock.step("ingest"):
        run_id, data_hash = ingest("sklearn:breast_cancer", TARGET, paths["data"], tracking_uri, PIPELINE_NAME, "plain")
    with clock.step("validate"):
        task = validate(
            paths["data"],
            TARGET,
            tracking_uri,
            DEFAULT_MODEL_NAME,
            run_id,
            Thresholds(),
            paths["report"],
            paths["profile"],
        )
    with clock.step("split"):
        split(paths["data"], TARGET, 0.2, seed, 1.0, paths["train"], paths["test"], tracking_uri, run_id, task.kind)
    device = "cuda" if cuda_available() else "cpu"
    candidates: list[tuple[str, Callable[[ReferenceProfile], Any], Any, tuple[str, ...]]] = [
        ("sklearn", lambda profile: sklearn_model(profile, seed), None, ()),
        ("xgboost", lambda profile: xgboost_model(profile, seed, device), for_cpu_inference, ("xgboost",)),
        ("torch", lambda profile: torch_model(profile, seed, device), None, ("torch",)),
        ("hgb", lambda profile: hgb_model(profile, seed), hgb_saved, ()),
    ]
    results = []
    for number, (name, make_model, prepare, packages) in enumerate(candidates, start=1):
        model_path = str(work / f"model-{name}")
        with clock.step(f"train-{name}"):
            trained = train_candidate(
                name,
                make_model,
                paths["train"],
                paths["profile"],
                tracking_uri,
                run_id,
                model_path,
                device,
                prepare_for_saving=prepare,
                extra_packages=packages,
            )
        with clock.step("evaluate" if number == 1 else f"evaluate-{number}"):
            scored = evaluate(model_path, paths["test"], tracking_uri, trained.to_json())
        results.append(json.dumps({"candidate": scored["candidate"]}))
    config = GateConfig(margin=0.002)  # the pipeline's defaults: beat the naive baseline, no floors
    with clock.step("gate"):
        decision = gate(results, paths["test"], paths["profile"], tracking_uri, DEFAULT_MODEL_NAME, run_id, config)
    if decision.passed:
        lineage = {
            "plinth.data_hash": data_hash,
            "plinth.git_commit": git_commit(),
            "plinth.pipeline_version": __version__,
        }
        with clock.step("register"):
            register(json.dumps(asdict(decision)), tracking_uri, DEFAULT_MODEL_NAME, run_id, lineage, "", paths["test"])
    return decision.reason


def main() -> int:
    """Train once into $PLINTH_HOME without kfp and print the decision and wall time."""
    home = plinth_home()
    home.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    clock = StepClock()
    with tempfile.TemporaryDirectory(prefix="plinth-plain-") as work:
        reason = run_steps(local_tracking_uri(home), Path(work), clock)
    print(f"plain run finished in {time.perf_counter() - started:.1f}s: {reason}")
    print(f"{STEP_TIMES_PREFIX}{json.dumps(clock.seconds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
