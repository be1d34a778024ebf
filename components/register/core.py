"""Register: a new model version with lineage tags; the alias move comes last and alone.

From the user's view the registry changes in one step: either the alias points at the new version, or
nothing changed (a version created before a failure is deleted again, and the error says so).

Before the version exists, its files are signed (`components/common/signing.py`): `model.sig` is stored
among them and the version is created with the manifest's digest and the key's fingerprint as tags, so
whoever loads the version later can tell whether its files are still the ones registered here.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.common import signing, tracking
from components.common.task import TAG_TASK

REACHABILITY_TIMEOUT_S = 5
# What started the run (pipelines/triggers): one tag per field, on the version and on the pipeline's run.
TRIGGER_TAG_PREFIX = "plinth.trigger."
TRIGGER_FIELDS = ("kind", "reason", "values", "time", "decision")


class RegistrationError(RuntimeError):
    """The registry could not be changed; the message says what happened to it."""


@dataclass(frozen=True)
class Registration:
    """A registered version, the alias it now carries and the digest of its signed files."""

    name: str
    version: str
    alias: str
    digest: str


def trigger_tags(trigger_json: str) -> dict[str, str]:
    """Return the `plinth.trigger.*` tags of a trigger's JSON (none for a run a person started).

    Raises:
        ValueError: the JSON is not an object; a run must not register a version with a garbled reason.
    """
    if not trigger_json:
        return {}
    trigger = json.loads(trigger_json)
    if not isinstance(trigger, dict):
        raise ValueError(f"trigger must be a JSON object, got {trigger_json[:80]!r}")
    return {
        TRIGGER_TAG_PREFIX + field: value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        for field in TRIGGER_FIELDS
        if (value := trigger.get(field)) is not None
    }


def ensure_reachable(tracking_uri: str) -> None:
    """Fail fast with one clear line when a tracking server does not answer (MLflow would retry for minutes)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    try:
        requests.get(f"{tracking_uri.rstrip('/')}/health", timeout=REACHABILITY_TIMEOUT_S).raise_for_status()
    except requests.RequestException as error:
        raise RegistrationError(
            f"MLflow tracking server unreachable at {tracking_uri} ({type(error).__name__}); registry unchanged"
        ) from error


def sign_artifacts(model_uri: str, private_key: Path, trained_digest: str) -> signing.Signed:
    """Sign the files at `model_uri` as they are now and store `model.sig` among them.

    The files must still be the ones the training step logged (`trained_digest`, carried here through the
    pipeline's own parameters, not through MLflow): files changed since are refused before anything is
    written. `model_uri` (`models:/m-…`, `runs:/…` or a plain artifact URI) is resolved to the directory a
    version made from it downloads; the signature goes there, so it travels with every download of the version.
    """
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    location = tracking.model_files_location(model_uri)
    with tempfile.TemporaryDirectory(prefix="plinth-sign-") as tmp:
        files = Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=tmp))
        found = signing.manifest_digest(files)
        if found != trained_digest:
            raise signing.SigningError(
                f"the files of {model_uri} changed after training (trained {trained_digest}, now {found}): "
                "they are not what was evaluated, so they are not signed"
            )
        signed = signing.sign(files, private_key)
        get_artifact_repository(location).log_artifact(str(files / signing.SIGNATURE_FILE))
    return signed


def register(
    client: MlflowClient,
    model_uri: str,
    name: str,
    alias: str,
    tags: dict[str, str],
    description: str,
    private_key: Path,
    trained_digest: str,
) -> Registration:
    """Sign the files of `model_uri` (still as trained), create a version of `name`, tag it, then point `alias`."""
    created_model = False
    created: str | None = None
    try:
        signed = sign_artifacts(model_uri, private_key, trained_digest)
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name, description="Registered by the plinth training pipeline.")
            created_model = True
        version = mlflow.register_model(model_uri, name, tags={**tags, **signed.tags()})
        created = str(version.version)
        client.update_model_version(name, created, description=description)
        client.set_registered_model_alias(name, alias, created)
    except (MlflowException, requests.RequestException, OSError, ValueError) as error:
        raise RegistrationError(_failure_message(client, name, created, created_model, alias, error)) from error
    return Registration(name, created, alias, signed.digest)


def _failure_message(
    client: MlflowClient, name: str, created: str | None, created_model: bool, alias: str, error: Exception
) -> str:
    """Undo a half-made registration (the version, and the registered model if this call made it)."""
    try:
        if created is not None:
            client.delete_model_version(name, created)
        if created_model:
            client.delete_registered_model(name)
    except (MlflowException, requests.RequestException, OSError) as cleanup_error:
        what = f"v{created}" if created is not None else f"the empty registered model {name}"
        return (
            f"registering {name} failed ({error}); alias {alias!r} was not moved, but {what} could not be "
            f"deleted ({cleanup_error}): delete it by hand"
        )
    if created is None:
        return f"registering {name} failed before a version was created ({error}); registry unchanged"
    return f"registering {name} failed ({error}); v{created} was deleted again, alias {alias!r} not moved"


def choose_key(tracking_uri: str) -> Path:
    """Return the key to sign with (PLINTH_SIGNING_KEY, else this machine's, made once and announced).

    Raises:
        RegistrationError: no key is configured for a registry that is not a local SQLite store.
    """
    try:
        key, created = signing.signing_key(tracking_uri)
    except signing.SigningError as error:
        raise RegistrationError(f"{error}; registry unchanged") from error
    if created:
        print(
            f"register: {signing.ENV_SIGNING_KEY} is unset: made this machine's signing key {key} "
            f"(public key {key.with_name(signing.PUBLIC_KEY_FILE)}, which serving verifies with)"
        )
    return key


def run(
    decision_json: str,
    tracking_uri: str,
    model_name: str,
    parent_run_id: str,
    lineage: dict[str, str],
    trigger: str = "",
) -> Registration:
    """Step entry: sign and register the gate's winner, and record the result (and its trigger) on the parent run."""
    decision = json.loads(decision_json)
    winner = decision["winner"]
    ensure_reachable(tracking_uri)
    client = tracking.connect(tracking_uri)
    tags = {
        **lineage,
        "plinth.candidate": winner["name"],
        "plinth.candidate_run_id": winner["run_id"],
        "plinth.pipeline_run_id": parent_run_id,
        "plinth.gate.reason": decision["reason"],
        TAG_TASK: winner["task"],
        **trigger_tags(trigger),
    }
    description = f"{winner['name']} candidate; gate: {decision['reason']}"
    try:
        key = choose_key(tracking_uri)
        registration = register(
            client, winner["model_uri"], model_name, decision["alias"], tags, description, key, winner["files_digest"]
        )
    except RegistrationError as error:
        tracking.mark_failed(client, parent_run_id, "register", str(error))
        raise
    for tag, value in trigger_tags(trigger).items():
        client.set_tag(parent_run_id, tag, value)
    client.set_tag(parent_run_id, tracking.TAG_VERSION, registration.version)
    client.set_tag(parent_run_id, tracking.TAG_ALIAS, registration.alias)
    client.set_terminated(parent_run_id, status="FINISHED")
    print(
        f"register: {model_name} v{registration.version} now has alias '{registration.alias}' "
        f"(files signed, {registration.digest})"
    )
    return registration
