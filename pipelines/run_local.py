"""Run the compiled training pipeline on this machine: kfp.local + MLflow on SQLite in $PLINTH_HOME.

`python -m pipelines.run_local` (what `make train` runs) executes pipelines/compiled/training-cpu.yaml, the
same file a cluster runs, with every step as a local subprocess, then prints what happened and where to look.
`--tracking-uri http://…` uses a remote MLflow server instead (its login from MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD; signed, as on a cluster, by the signer service the compiled pipeline names: compile
with `--signer-url` and pass `--pipeline`); `--source s3://…` reads
data from an object store with the credentials of the standard environment (components/ingest/README.md).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfp import components, local

from components.common.decision import F1, objective_argument
from components.common.redact import redact
from components.common.state import local_tracking_uri, plinth_home
from components.common.task import AUTO, BINARY_METRICS, OVERRIDES, REGRESSION_METRICS
from components.split.core import DEFAULT_VALIDATION_SIZE
from components.validate.thresholds import Thresholds, flag
from pipelines.compile import compiled_path
from pipelines.summary import failure_summary, run_summary
from pipelines.training.pipeline import (
    DEFAULT_MODEL_NAME,
    DEFAULT_SEARCH_TIME_S,
    DEFAULT_SEARCH_TRIALS,
    PIPELINE_NAME,
)
from pipelines.warm_steps import warm_steps

# The validate step's limits (components/validate/thresholds.py), each a pipeline parameter and a flag here.
DATA_CHECKS: tuple[tuple[str, type, str], ...] = (
    ("max_missing_share", float, "missing share above which a feature is dropped, not a model input"),
    ("indicator_missing_share", float, "missing share above which a numeric feature gets a missing indicator"),
    ("min_class_rows", int, "fewest rows of any class (classification): enough for stratified splits"),
    ("min_class_share", float, "smallest share of any class (classification); 0 checks none"),
    ("max_psi", float, "largest PSI per feature against the champion's profile"),
    ("max_categories", int, "distinct values above which a category column is high-cardinality"),
    ("min_rows", int, "fewest rows the table may have"),
    ("max_out_of_range_share", float, "largest share of a feature's values outside the champion's range"),
    ("range_tolerance", float, "share of the champion's range a value may lie beyond it"),
    ("max_unseen_share", float, "largest share of values in categories the champion never saw"),
)


def whole(minimum: int) -> Callable[[str], int]:
    """Return argparse's type for an integer flag of at least `minimum` (a refusal is one line naming the flag)."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def share(text: str) -> float:
    """Return argparse's type for a share strictly between 0 and 1."""
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value:g}")
    return value


def seconds(text: str) -> float:
    """Return argparse's type for a positive number of seconds."""
    value = float(text)
    if not value > 0.0:
        raise argparse.ArgumentTypeError(f"must be above 0 seconds, got {value:g}")
    return value


def floor_parameter(value: float | None) -> str:
    """Return a gate floor as the pipeline parameter takes it: "" for none (see components/gate/config.py)."""
    return "" if value is None else repr(value)


def git_commit() -> str:
    """Return the current commit for lineage tags, or "unknown" outside a git checkout."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the runner's flags; each maps to a pipeline parameter."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", type=Path, default=compiled_path("cpu"), help="compiled pipeline YAML")
    parser.add_argument(
        "--source",
        default="sklearn:breast_cancer",
        help="sklearn:breast_cancer|wine|diabetes, synthetic:churn, a .csv/.parquet file or a Parquet folder "
        "(hive partitions), as a path or an s3://, gs:// or abfs:// URL",
    )
    parser.add_argument(
        "--tracking-uri",
        default="",
        help="MLflow tracking server to record to (default: SQLite in $PLINTH_HOME)",
    )
    parser.add_argument("--target", default="target", help="target column (the label, or the value to predict)")
    parser.add_argument(
        "--task",
        default=AUTO,
        choices=OVERRIDES,
        help="what the model solves; auto decides from the target (default: %(default)s)",
    )
    parser.add_argument(
        "--categorical", default="", help="comma-separated feature columns to treat as categorical (others detected)"
    )
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help="registered model name")
    parser.add_argument("--seed", type=int, default=42, help="seed of the split and the candidates")
    parser.add_argument("--train-fraction", type=float, default=1.0, help="share of training rows to use (0-1]")
    search = parser.add_argument_group("hyper-parameter search (components/search)")
    search.add_argument(
        "--validation-size",
        type=share,
        default=DEFAULT_VALIDATION_SIZE,
        help="share of the training rows the search scores on, never fitted by the final model (default: %(default)s)",
    )
    search.add_argument(
        "--search-trials",
        type=whole(0),
        default=DEFAULT_SEARCH_TRIALS,
        help="trials per candidate family; 0 trains the fixed settings (default: %(default)s)",
    )
    search.add_argument(
        "--search-time-s",
        type=seconds,
        default=DEFAULT_SEARCH_TIME_S,
        help="seconds each family may search (default: %(default)s)",
    )
    search.add_argument(
        "--search-parallelism",
        type=whole(1),
        default=1,
        help="independent studies per family, run at once as ParallelFor shards (default: %(default)s)",
    )
    search.add_argument(
        "--refit",
        dest="refit_full",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fit each family's winner again on training + validation rows, keeping the threshold and "
        "calibration chosen on the validation rows; --no-refit saves the fit on the training rows "
        "(default: refit)",
    )
    parser.add_argument(
        "--decision-objective",
        default=F1,
        type=objective_argument,
        help="what a binary model's threshold is chosen for on the validation rows: f1, or cost:FP,FN "
        "(cost:1,5: a missed positive costs five false alarms) (default: %(default)s)",
    )
    parser.add_argument(
        "--primary-metric",
        default="",
        choices=("", *sorted({*BINARY_METRICS, *REGRESSION_METRICS})),
        help="metric that picks the winner and must beat the champion (default: roc_auc, or r2 for regression)",
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=0.002,
        help="amount of the primary metric to beat the naive baseline (prior, mean) and the champion by",
    )
    floors = parser.add_argument_group("gate floors (opt-in: none unless given)")
    floors.add_argument("--min-roc-auc", type=float, help="lowest acceptable ROC AUC (classification)")
    floors.add_argument("--min-accuracy", type=float, help="lowest acceptable accuracy (classification)")
    floors.add_argument("--min-r2", type=float, help="lowest acceptable R² (regression)")
    checks = parser.add_argument_group("data checks (validate)")
    for name, kind, text in DATA_CHECKS:
        default = getattr(Thresholds(), name)
        checks.add_argument(flag(name), type=kind, default=default, help=f"{text} (default: %(default)s)")
    parser.add_argument(
        "--trigger", default="", help="what started the run, as JSON (set by pipelines/triggers; tagged on the version)"
    )
    return parser.parse_args(argv)


def open_local(compiled: Path, tracking_uri: str | None) -> tuple[Path, str, Any] | None:
    """Load a compiled pipeline for kfp.local, with its runs and MLflow state under PLINTH_HOME.

    Returns:
        (PLINTH_HOME, the tracking URI, the loaded pipeline), or None after one line on stderr when the
        compiled file is missing.
    """
    if not compiled.is_file():
        print(f"error: compiled pipeline {compiled} not found; run `make compile`", file=sys.stderr)
        return None
    home = plinth_home()
    home.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(home / "pipeline-runs"))
    return home, tracking_uri or local_tracking_uri(home), components.load_component_from_file(str(compiled))


def main(argv: list[str] | None = None) -> int:
    """Run the pipeline once and print a summary; return the process exit code."""
    args = parse_args(argv)
    opened = open_local(args.pipeline, args.tracking_uri)
    if opened is None:
        return 2
    home, tracking_uri, pipeline = opened
    print(f"plinth: running {args.pipeline.name} locally; state in {home}; tracking {redact(tracking_uri)}")
    started = time.time()
    try:
        with warm_steps():
            pipeline(
                tracking_uri=tracking_uri,
                model_name=args.model_name,
                experiment=PIPELINE_NAME,
                source=args.source,
                target_column=args.target,
                task=args.task,
                categorical_columns=args.categorical,
                seed=args.seed,
                train_fraction=args.train_fraction,
                validation_size=args.validation_size,
                search_trials=args.search_trials,
                search_time_s=args.search_time_s,
                search_parallelism=args.search_parallelism,
                decision_objective=args.decision_objective,
                refit_full=args.refit_full,
                primary_metric=args.primary_metric,
                margin=args.margin,
                min_roc_auc=floor_parameter(args.min_roc_auc),
                min_accuracy=floor_parameter(args.min_accuracy),
                min_r2=floor_parameter(args.min_r2),
                **{name: getattr(args, name) for name, _, _ in DATA_CHECKS},
                git_commit=git_commit(),
                trigger=args.trigger,
            )
    except RuntimeError as error:
        print(failure_summary(tracking_uri, PIPELINE_NAME, started, error), file=sys.stderr)
        return 1
    print(run_summary(tracking_uri, PIPELINE_NAME, args.model_name, started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
