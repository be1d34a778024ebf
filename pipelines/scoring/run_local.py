"""Run the compiled scoring pipeline on this machine: `make score SOURCE=… OUT=… [MODEL=…] [VERSION=…|ALIAS=…]`.

`python -m pipelines.scoring.run_local` runs pipelines/compiled/scoring-cpu.yaml, the file a cluster runs, with
kfp.local (warm steps, as `make train`: pipelines/warm_steps.py) against MLflow on SQLite in $PLINTH_HOME, then
prints where every row went, read back from the MLflow run. A step that fails ends in one line on stderr
(exit 1): the source, the model or the output that could not be used, and why.

On one machine the signature is checked with the local store's key and required only where
PLINTH_REQUIRE_SIGNATURE=true says so (as `make serve` does); the compiled pipeline requires it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from components.common import signing, tracking
from components.common.redact import redact
from components.score.core import EXPERIMENT, KIND, TAG_VERIFICATION, TAG_VERSION
from pipelines.compile import compiled_path
from pipelines.run_local import git_commit, open_local
from pipelines.training.pipeline import DEFAULT_MODEL_NAME
from pipelines.warm_steps import warm_steps


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the runner's flags; each maps to a pipeline parameter."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", type=Path, default=compiled_path("cpu", pipeline="scoring"))
    parser.add_argument("--source", required=True, help="table to score: .csv/.parquet file or Parquet folder, or URL")
    parser.add_argument("--out", required=True, help="directory or s3://, gs://, abfs:// prefix for the predictions")
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help="registered model (default: %(default)s)")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--version", default="", help="model version to score with")
    choice.add_argument("--alias", default="champion", help="alias to score with (default: %(default)s)")
    parser.add_argument("--chunk-rows", type=int, default=100_000, help="rows per chunk (default: %(default)s)")
    parser.add_argument("--keep", default="", help="comma-separated source columns copied beside each answer")
    parser.add_argument(
        "--explain", action="store_true", help="add each answer's per-feature contributions (plinth's models only)"
    )
    parser.add_argument("--tracking-uri", default="", help="MLflow to use (default: SQLite in $PLINTH_HOME)")
    return parser.parse_args(argv)


def outcome(tracking_uri: str, since: float) -> tuple[str, bool]:
    """Return the newest scoring run's summary (or its failure, one line) and whether it succeeded."""
    client = tracking.connect(tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = (
        client.search_runs(
            [experiment.experiment_id],
            f"tags.`{tracking.TAG_KIND}` = '{KIND}' and attributes.start_time >= {int(since * 1000)}",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if experiment
        else []
    )
    if not runs:
        return "score: the step failed before it opened its MLflow run (see the log above)", False
    found = runs[0]
    tags, metrics = found.data.tags, found.data.metrics
    if found.info.status != "FINISHED":
        return f"error: score: {tags.get('plinth.failure', 'the step failed (see the log above)')}", False
    lines = [
        "",
        "=== plinth scoring summary ===",
        f"model         : {found.data.params.get('model')} -> v{tags.get(TAG_VERSION)} ({tags.get(TAG_VERIFICATION)})",
        f"rows          : {metrics['rows_in']:.0f} in = {metrics['rows_scored']:.0f} scored"
        f" + {metrics['rows_rejected']:.0f} rejected ({metrics.get('rows_per_second', 0):,.0f} rows/s)",
        f"predictions   : {found.data.params.get('out')}/predictions/",
        f"drift         : max PSI {metrics.get('drift_max_psi', float('nan')):.3f}"
        f", {metrics.get('drift_features_over_limit', 0):.0f} feature(s) over the limit (artifacts/drift/report.md)",
        f"mlflow run id : {found.info.run_id} (experiment {EXPERIMENT})",
    ]
    if metrics["rows_rejected"]:
        lines.insert(5, f"rejects       : {found.data.params.get('out')}/rejects/ (each row with its reasons)")
    return "\n".join(lines), True


def absolute(location: str) -> str:
    """Return a local path made absolute (the step runs elsewhere); a URL as it is."""
    return location if "://" in location else str(Path(location).expanduser().resolve())


def main(argv: list[str] | None = None) -> int:
    """Run the scoring pipeline once and print where every row went; return the exit code."""
    args = parse_args(argv)
    opened = open_local(args.pipeline, args.tracking_uri)
    if opened is None:
        return 2
    _, tracking_uri, pipeline = opened
    out = absolute(args.out)
    source = (
        args.source
        if "://" in args.source or ":" in args.source.split("/")[0]
        else str(Path(args.source).expanduser().resolve())
    )
    print(f"plinth: scoring {redact(args.source)} locally; tracking {redact(tracking_uri)}")
    started = time.time()
    try:
        with warm_steps():
            pipeline(
                source=source,
                out=out,
                tracking_uri=tracking_uri,
                model_name=args.model_name,
                version=args.version,
                alias=args.alias,
                chunk_rows=args.chunk_rows,
                keep=args.keep,
                explain=args.explain,
                require_signature=signing.signature_required(),
                verify_key="",
                git_commit=git_commit(),
            )
    except RuntimeError:
        pass  # the step's own failure is in MLflow; kfp.local's error names only the task
    summary, succeeded = outcome(tracking_uri, started)
    print(summary, file=sys.stdout if succeeded else sys.stderr)
    return 0 if succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
