"""The signer: sign one registered version, after checking it for itself, so a signature vouches for something.

A signature is worth what its signer checked. This function trusts nothing its caller sends but a name and a
version: it reads the rest from the registry and the files themselves, and refuses, before writing anything,

- files that are not what training logged (it recomputes their manifest digest and compares it with the
  `plinth.files_digest` tag of the version's candidate run);
- a version whose run is not the winner the gate recorded on the pipeline's run (`plinth.gate.*` tags);
- a model whose MLflow loader is not plinth's own (`mlflow.sklearn` in skops format), or that brings code;
- files that already carry a statement for another version, or a run whose files were already signed as
  another version (signed files registered again, with or without their statement).

Only then does it write `plinth-statement.json` (name, version, runs, files digest, the gate's evidence) among
the files, sign the directory with `signing.sign` (the statement is one of the hashed files), upload both, and
tag the version. Who runs it holds the key: the register step on one machine, the signer service
(`serving/signer/`) in a cluster, where no pipeline step can read the key.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.common import loaders, signing, tracking

# The tag the training step puts on its candidate run: the manifest digest of the files it logged.
TAG_FILES_DIGEST = "plinth.files_digest"
# What the gate records on the pipeline's run besides decision, reason and winner name (components/gate).
TAG_WINNER_RUN = "plinth.gate.winner_run_id"
TAG_MARGIN = "plinth.gate.margin"
TAG_PRIMARY = "plinth.gate.primary_metric"
PARENT_RUN_TAG = "mlflow.parentRunId"
WINNER_METRIC_PREFIX = "winner_"
# How plinth's own models store their estimator (components/common/modeling.py); loaders.PLINTH_LOADERS loads it.
PLINTH_SERIALIZATION = "skops"


class Refused(ValueError):
    """The version may not be signed; the message says why (the signer answers it with a 4xx)."""


def _candidate_run(client: MlflowClient, name: str, version: str) -> tuple[Any, Any]:
    """Return the version and its candidate run, refusing a version that does not exist or has no run."""
    try:
        found = client.get_model_version(name, version)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise Refused(f"{name} v{version} does not exist") from error
    if not found.run_id:
        raise Refused(f"{name} v{version} has no run: it was not trained by a plinth pipeline")
    return found, client.get_run(found.run_id)


def gate_evidence(client: MlflowClient, run: Any) -> tuple[str, dict[str, Any]]:
    """Return the pipeline run's id and the gate's evidence, refusing unless the gate chose this run.

    Raises:
        Refused: the run has no pipeline run, the gate did not pass, or it named another winner.
    """
    run_id = run.info.run_id
    pipeline_run_id = run.data.tags.get(PARENT_RUN_TAG)
    if not pipeline_run_id:
        raise Refused(f"run {run_id} belongs to no pipeline run: no gate decided on it")
    parent = client.get_run(pipeline_run_id)
    tags = parent.data.tags
    if tags.get(tracking.TAG_DECISION) != "passed":
        raise Refused(
            f"the gate of pipeline run {pipeline_run_id} did not pass (decision {tags.get(tracking.TAG_DECISION)!r})"
        )
    winner = tags.get(TAG_WINNER_RUN)
    if winner != run_id:
        raise Refused(f"run {run_id} is not the gate's winner of pipeline run {pipeline_run_id} (winner: {winner})")
    metrics = {
        key.removeprefix(WINNER_METRIC_PREFIX): value
        for key, value in parent.data.metrics.items()
        if key.startswith(WINNER_METRIC_PREFIX)
    }
    evidence = {
        "reason": tags.get(tracking.TAG_REASON, ""),
        "winner": tags.get(tracking.TAG_WINNER, ""),
        "primary_metric": tags.get(TAG_PRIMARY, ""),
        "metrics": metrics,
        "margin": _number(tags.get(TAG_MARGIN)),
    }
    return pipeline_run_id, evidence


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def check_loader(files: Path) -> None:
    """Refuse a model whose pyfunc loader is not plinth's, ships code of its own, or is a pickle (not skops)."""
    try:
        loader = loaders.Loader.read(files)
    except ValueError as error:
        raise Refused(f"the files carry no readable MLmodel ({error})") from error
    if loader.module not in loaders.PLINTH_LOADERS:
        raise Refused(f"loader_module {loader.module!r} is not plinth's ({', '.join(sorted(loaders.PLINTH_LOADERS))})")
    if loader.ships_code:
        raise Refused("the model brings code of its own (a flavor's `code`); plinth's models bring none")
    if loader.sklearn_format != PLINTH_SERIALIZATION:
        raise Refused(
            f"its sklearn files are {loader.sklearn_format!r}, not {PLINTH_SERIALIZATION}: "
            "plinth's models are never pickles"
        )


def check_not_signed_elsewhere(client: MlflowClient, run_id: str, name: str, version: str) -> None:
    """Refuse when another version made from the same run is signed already (its statement may have been removed)."""
    for other in client.search_model_versions(f"run_id = '{run_id}'"):
        if (other.name, str(other.version)) != (name, version) and signing.TAG_DIGEST in (other.tags or {}):
            raise Refused(f"the files of run {run_id} are already signed for {other.name} v{other.version}")


def check_statement(files: Path, name: str, version: str) -> None:
    """Refuse files that already carry a statement for another version; drop this version's own (a retry)."""
    path = files / signing.STATEMENT_FILE
    if not path.is_file():
        return
    try:
        earlier = json.loads(path.read_text())
        signed_for = (str(earlier["name"]), str(earlier["version"]))
    except (ValueError, KeyError, TypeError) as error:
        raise Refused(f"the files carry an unreadable {signing.STATEMENT_FILE}") from error
    if signed_for != (name, version):
        raise Refused(f"the files are already signed for {signed_for[0]} v{signed_for[1]}, not {name} v{version}")
    path.unlink()


def sign_version(client: MlflowClient, name: str, version: str, key: Path) -> signing.Signed:
    """Check version `version` of `name` (see the module docstring), then state, sign, upload and tag it.

    Raises:
        Refused: the version may not be signed; nothing was written.
        MlflowException, OSError: the registry or the artifact store failed (nothing vouched for).
    """
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    version = str(version)
    found, run = _candidate_run(client, name, version)
    trained = run.data.tags.get(TAG_FILES_DIGEST)
    if not trained:
        raise Refused(f"run {run.info.run_id} recorded no {TAG_FILES_DIGEST}: nobody said which files were trained")
    pipeline_run_id, evidence = gate_evidence(client, run)
    check_not_signed_elsewhere(client, run.info.run_id, name, version)
    location = client.get_model_version_download_uri(name, version)
    with tempfile.TemporaryDirectory(prefix="plinth-sign-") as tmp:
        files = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=tmp, tracking_uri=client.tracking_uri)
        )
        check_statement(files, name, version)
        (files / signing.SIGNATURE_FILE).unlink(missing_ok=True)
        check_loader(files)
        found_digest = signing.manifest_digest(files)
        if found_digest != trained:
            raise Refused(
                f"the files of {name} v{version} are not what run {run.info.run_id} trained "
                f"(trained {trained}, now {found_digest})"
            )
        statement = {
            "name": name,
            "version": version,
            "run_id": run.info.run_id,
            "pipeline_run_id": pipeline_run_id,
            "files_digest": trained,
            "gate": evidence,
            "signed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (files / signing.STATEMENT_FILE).write_text(json.dumps(statement, indent=2, sort_keys=True) + "\n")
        signed = signing.sign(files, key)
        repository = get_artifact_repository(location, tracking_uri=client.tracking_uri)
        repository.log_artifact(str(files / signing.STATEMENT_FILE))
        repository.log_artifact(str(files / signing.SIGNATURE_FILE))
    for tag, value in signed.tags().items():
        client.set_model_version_tag(name, found.version, tag, value)
    return signed
