"""MLflow wiring shared by the steps: one place decides the tracking URI and where artifacts go."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
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
# A rollout's outcome as the controller records it on the canary's model version (`plinth.rollout.<env>.status`),
# read by `make promote`, `make status` and the retraining triggers: the registry's vocabulary, not the controller's.
IN_PROGRESS, PROMOTED, ROLLED_BACK = "in_progress", "promoted", "rolled_back"
# Cluster outcomes that are not an analysis verdict: the first version an environment serves, and a rollout
# whose desired version Git took back before it ended.
INITIALIZED, CANCELED = "initialized", "canceled"
REJECTED_TAG = "plinth.rejected"
SERVING_ALIAS_PREFIX = "serving-"
# What MLflow exports into the environment when its default tracking / registry URI is set.
MLFLOW_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
# MLflow draws a progress bar for every artifact download once tqdm is installed (optuna brings it): carriage-
# return noise in pod logs that also breaks the CLIs' one-line errors. Off unless a user turns it back on.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def serving_alias(environment: str) -> str:
    """Return the registry alias that records what `environment`'s stable serves (`serving-staging`)."""
    return f"{SERVING_ALIAS_PREFIX}{environment}"


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
    """Point MLflow (tracking and registry) at `tracking_uri` and return a client for it.

    The process-wide default is what `models:/` URIs and `mlflow.start_run` resolve against. MLflow 3 also
    exports it as MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI into `os.environ`, so every process started
    afterwards (a model service, a test server) would silently inherit this registry; the variables are
    put back as they were, and plinth hands child processes their registry explicitly.
    """
    parsed = urlparse(tracking_uri)
    if parsed.scheme == "sqlite":
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    saved = {name: os.environ.get(name) for name in MLFLOW_URI_VARIABLES}
    try:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def model_files_location(model_uri: str) -> str:
    """Return the artifact location of a model's files: what a registered version of it downloads.

    `model_uri` is `models:/m-…`, `runs:/…` or a plain artifact URI, resolved against the process-wide
    tracking URI (`connect`).
    """
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

    if ModelsArtifactRepository.is_models_uri(model_uri):
        return str(ModelsArtifactRepository.get_underlying_uri(model_uri))
    if RunsArtifactRepository.is_runs_uri(model_uri):
        return str(RunsArtifactRepository.get_underlying_uri(model_uri))
    return model_uri


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


@contextmanager
def integer_columns_checked() -> Iterator[None]:
    """Silence MLflow's hint that integer columns cannot hold nulls, where plinth has already made sure.

    `features.prepare_features` turns every integer column that can be missing into a float column, so
    the hint (printed for every schema MLflow infers from a frame with an integer column) is noise.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ii]nteger column", category=UserWarning)
        yield
