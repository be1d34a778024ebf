"""Time the distributed option against one process: `python -m pipelines.training.bench_distributed [--rows N]`.

XGBoost in one process vs on a 2-worker Dask `LocalCluster` (1 thread each), and the MLP in one process vs
2 torchrun processes over gloo, each reading the same training Parquet (the churn table: numbers, categories,
missing values). The Dask cluster is started before its clock starts, as a DaskCluster in a cluster outlives
a run; torchrun's start is counted, as the step pays it. The numbers go into the train_xgboost and
train_torch READMEs, where the size at which the option pays is discussed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from distributed import LocalCluster

from components.common.features import split_target
from components.common.profile import build_profile
from components.common.task import infer_task
from components.ingest.synthetic import churn_table
from components.split.core import split
from components.train_torch.core import build_model as build_torch
from components.train_torch.distributed import torchrun_fit
from components.train_xgboost.core import build_model as build_xgboost
from components.train_xgboost.distributed import dask_fit

# Passes of the MLP in both runs (early stopping off the table: the same work either way).
PASSES = 5


def clock(label: str, work: Callable[[], object]) -> float:
    """Run `work`, print and return its wall-clock seconds."""
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    print(f"{label:<48} {seconds:7.1f} s", flush=True)
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Write the table, time each engine once, print the seconds and the machine's load."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the table (default: %(default)s)")
    rows = parser.parse_args(argv).rows
    if rows < 100:
        parser.error("--rows must be at least 100")
    frame = churn_table(rows)
    profile = build_profile(frame, "churned", infer_task(frame["churned"]))
    train, _ = split(frame, "churned", 0.2, seed=0, stratify=True)
    with tempfile.TemporaryDirectory(prefix="plinth-bench-") as tmp:
        path = str(Path(tmp) / "train.parquet")
        train.to_parquet(path, index=False, row_group_size=len(train) // 4 + 1)

        def in_memory(build: Callable[[], object]) -> Callable[[], object]:
            return lambda: build().fit(*split_target(pd.read_parquet(path), profile))  # type: ignore[attr-defined]

        print(f"{len(train)} training rows, load average {Path('/proc/loadavg').read_text().split()[:3]}")
        clock("xgboost, one process (n_jobs=2)", in_memory(lambda: build_xgboost(profile, 0, "cpu")))
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            fit = dask_fit(cluster.scheduler_address)
            clock("xgboost, 2 Dask workers x 1 thread", lambda: fit(build_xgboost(profile, 0, "cpu"), path, profile))
        clock(f"torch MLP {PASSES} passes, one process", in_memory(lambda: build_torch(profile, 0, "cpu", PASSES)))
        ddp = torchrun_fit(2, 0, PASSES, 600.0)
        clock(f"torch MLP {PASSES} passes, torchrun 2 processes", lambda: ddp(None, path, profile))
    print(f"load average {Path('/proc/loadavg').read_text().split()[:3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
