"""What a person reads at the end of a run: read back from MLflow, the source of truth, not from kfp."""

from __future__ import annotations

import re
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run

from components.common import tracking
from components.common.state import DEFAULT_HOME

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def latest_pipeline_run(client: MlflowClient, experiment: str, since: float) -> Run | None:
    """Return the newest parent run of `experiment` started after `since` (epoch seconds)."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`{tracking.TAG_KIND}` = 'pipeline' and attributes.start_time >= {int(since * 1000)}",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def ui_hint(tracking_uri: str) -> str:
    """Return how to look at the runs in the MLflow UI, as a command that works in the user's shell."""
    if tracking_uri.startswith("sqlite:"):
        home = Path(tracking_uri.removeprefix("sqlite:///")).parent
        prefix = "" if home == (Path.cwd() / DEFAULT_HOME).resolve() else f"PLINTH_HOME={home} "
        return f"{prefix}make mlflow-ui   (MLflow UI on http://127.0.0.1:5000)"
    return tracking_uri


def run_summary(tracking_uri: str, experiment: str, model_name: str, since: float) -> str:
    """Summarise a finished pipeline run: winner, metrics, decision, model version and alias."""
    client = tracking.connect(tracking_uri)
    run = latest_pipeline_run(client, experiment, since)
    if run is None:
        return "plinth: the pipeline finished, but no parent run was found in MLflow"
    tags, metrics = run.data.tags, run.data.metrics
    scores = ", ".join(
        f"{k.removeprefix('winner_')} {v:.4f}" for k, v in sorted(metrics.items()) if k.startswith("winner_")
    )
    lines = [
        "",
        "=== plinth training summary ===",
        f"task          : {tags.get('plinth.task', '?')} (target {run.data.params.get('target', '?')})",
        f"winner        : {tags.get(tracking.TAG_WINNER, '?')} ({scores})",
        f"gate          : {tags.get(tracking.TAG_DECISION, '?')}: {tags.get(tracking.TAG_REASON, '')}",
    ]
    lines[4:4] = search_line(client, run)
    if tags.get(tracking.TAG_VERSION):
        lines.append(
            f"registered    : {model_name} v{tags[tracking.TAG_VERSION]} with alias '{tags[tracking.TAG_ALIAS]}'"
        )
    else:
        lines.append("registered    : nothing (the registry is unchanged)")
    lines += [
        f"mlflow run id : {run.info.run_id} (experiment {experiment})",
        f"look          : {ui_hint(tracking_uri)}",
        f"elapsed       : {(run.info.end_time or run.info.start_time) / 1000 - since:.0f}s",
    ]
    return "\n".join(lines)


def search_line(client: MlflowClient, run: Run) -> list[str]:
    """Return the line saying how many rows the search's trials fitted on, when a candidate was searched."""
    from components.common.candidate import TAG_REFIT
    from components.search.budget import TRIAL_ROWS, describe
    from components.search.records import TAG_TRIALS

    rows = int(float(run.data.params.get("training_rows", "0")))
    searched = client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}' and tags.`{TAG_TRIALS}` != '0'",
        max_results=1,
    )
    if not rows or not searched:
        return []
    candidate = searched[0].data
    if candidate.tags.get(TAG_REFIT) == "true":
        fitted = f"the winner refitted on training + validation ({int(candidate.metrics.get('fit_rows', 0)):,} rows)"
    else:
        fitted = "the winner fitted on all of them"
    return [f"search        : {describe(min(rows, TRIAL_ROWS), rows)} per trial; {fitted}"]


def failure_summary(tracking_uri: str, experiment: str, since: float, error: Exception) -> str:
    """Summarise a failed run in a few lines: the failed step and its reason, as recorded in MLflow."""
    client = tracking.connect(tracking_uri)
    run = latest_pipeline_run(client, experiment, since)
    lines = ["", "=== plinth training FAILED ==="]
    if run is not None and run.data.tags.get("plinth.failed_step"):
        lines.append(f"step          : {run.data.tags['plinth.failed_step']}")
        lines.append(f"reason        : {run.data.tags.get('plinth.failure', '')}")
        lines.append(f"mlflow run id : {run.info.run_id} (report: artifacts/validation/report.md)")
    else:
        lines.append(f"reason        : {ANSI_ESCAPE.sub('', str(error))}")
    lines.append(f"look          : {ui_hint(tracking_uri)}")
    return "\n".join(lines)
