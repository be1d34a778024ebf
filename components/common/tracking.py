"""MLflow wiring shared by the steps: one place decides the tracking URI and where artifacts go."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import mlflow
from mlflow import MlflowClient

# Tags that the steps write on the pipeline's parent run; the local runner reads them for its summary.
TAG_KIND = "plinth.kind"
TAG_DECISION = "plinth.gate.decision"
TAG_REASON = "plinth.gate.reason"
TAG_WINNER = "plinth.gate.winner"
TAG_VERSION = "plinth.registered.version"
TAG_ALIAS = "plinth.registered.alias"
CHAMPION = "champion"
CHALLENGER = "challenger"


def artifact_root(tracking_uri: str) -> str | None:
    """Return where a new experiment keeps artifacts, or None to let a tracking server decide.

    A SQLite store has no artifact store of its own; MLflow would fall back to ./mlruns in whatever
    directory the step runs in, so artifacts go beside the database instead.
    """
    parsed = urlparse(tracking_uri)
    if parsed.scheme != "sqlite":
        return None
    db_path = Path(tracking_uri.removeprefix("sqlite:///"))
    return (db_path.parent / "mlartifacts").as_uri()


def connect(tracking_uri: str) -> MlflowClient:
    """Point MLflow (tracking and registry) at `tracking_uri` and return a client for it."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme == "sqlite":
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_experiment(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """Return the id of experiment `name`, creating it (with a proper artifact root) if missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(client.create_experiment(name, artifact_location=artifact_root(tracking_uri)))


def champion_version(client: MlflowClient, model_name: str) -> str | None:
    """Return the version that alias `champion` points to, or None when there is none yet."""
    if not client.search_registered_models(filter_string=f"name = '{model_name}'"):
        return None
    aliases = client.get_registered_model(model_name).aliases
    return str(aliases[CHAMPION]) if CHAMPION in aliases else None


def mark_failed(client: MlflowClient, run_id: str, step: str, message: str) -> None:
    """Close the pipeline's parent run as FAILED, saying which step stopped it and why."""
    client.set_tag(run_id, "plinth.failed_step", step)
    client.set_tag(run_id, "plinth.failure", message[:4000])
    client.set_terminated(run_id, status="FAILED")
