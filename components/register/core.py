"""Register: a new model version with lineage tags, signed by a signer, then the alias move, last and alone.

From the user's view the registry changes in one step: either the alias points at the new version, or
nothing changed (a version created before a failure is deleted again, and the error says so).

The order: create the version (lineage and gate tags, no alias) -> ask a signer to sign (name, version) -> move
the alias. The signer (`components/common/attest.py`) checks the version for itself and writes the statement,
`model.sig` and the signature tags; a refusal deletes the version again and fails the step with its reason.
On one machine (a local SQLite store) this step is the signer, with the key under `$PLINTH_HOME/keys`; anywhere
else it holds no key and asks the signer service at PLINTH_SIGNER_URL (`serving/signer/`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.common import attest, signing, tracking
from components.common.explain import NotExplainable
from components.common.task import TAG_TASK
from components.register.importance import log_importance

REACHABILITY_TIMEOUT_S = 5
ENV_SIGNER_URL = "PLINTH_SIGNER_URL"
# Downloading, hashing and uploading a model's files: a minute is generous for plinth's models.
SIGNER_TIMEOUT_S = 120
# What started the run (pipelines/triggers): one tag per field, on the version and on the pipeline's run.
TRIGGER_TAG_PREFIX = "plinth.trigger."
TRIGGER_FIELDS = ("kind", "reason", "values", "time", "decision")
# The saved model was refitted on training + validation rows ("true"/"false"), and on how many rows it was fitted.
TAG_REFIT, TAG_FIT_ROWS = "plinth.refit", "plinth.fit_rows"
# The winner's decision (`common/decision.py`), on the version: its validation ECE as fitted and as served
# (calibrated, or the same without calibration), and a binary model's threshold. Absent: not measured.
DECISION_TAGS = {"ece_before": "plinth.ece", "ece_after": "plinth.ece_calibrated", "threshold": "plinth.threshold"}


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


def decision_tags(decision: Mapping[str, Any] | None) -> dict[str, str]:
    """Return the version tags of the winner's `plinth.decision` block (none for a model without one)."""
    block = decision or {}
    tags = {tag: repr(float(block[field])) for field, tag in DECISION_TAGS.items() if block.get(field) is not None}
    if block:  # which rows the saved model was fitted on (components/search/refit.py)
        tags[TAG_REFIT] = str(bool(block.get("refit", False))).lower()
    if block.get("fit_rows") is not None:
        tags[TAG_FIT_ROWS] = str(int(block["fit_rows"]))
    return tags


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


# Signs version (name, version) and returns its signature, or raises with the signer's reason.
Signer = Callable[[str, str], signing.Signed]


class SignerRefused(ValueError):
    """The signer would not sign the version; the message is its reason."""


def local_signer(client: MlflowClient, key: Path) -> Signer:
    """Return a signer that signs in this process (one machine: the key lies beside the local store)."""

    def sign(name: str, version: str) -> signing.Signed:
        return attest.sign_version(client, name, version, key)

    return sign


def remote_signer(url: str) -> Signer:
    """Return a signer that asks the signer service at `url` (it holds the key; this step holds none)."""

    def sign(name: str, version: str) -> signing.Signed:
        answer = requests.post(
            f"{url.rstrip('/')}/sign", json={"name": name, "version": version}, timeout=SIGNER_TIMEOUT_S
        )
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if answer.status_code != 200:
            reason = body.get("error") if isinstance(body, dict) else None
            raise SignerRefused(f"the signer at {url} answered {answer.status_code}: {reason or answer.text[:200]}")
        return signing.Signed(str(body["digest"]), str(body["key"]))

    return sign


def register(
    client: MlflowClient,
    model_uri: str,
    name: str,
    alias: str,
    tags: dict[str, str],
    description: str,
    sign: Signer,
) -> Registration:
    """Create a version of `name` from `model_uri`, tag it, have it signed, then point `alias` at it."""
    created_model = False
    created: str | None = None
    try:
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name, description="Registered by the plinth training pipeline.")
            created_model = True
        version = mlflow.register_model(model_uri, name, tags=tags)
        created = str(version.version)
        client.update_model_version(name, created, description=description)
        signed = sign(name, created)
        client.set_registered_model_alias(name, alias, created)
    except (MlflowException, requests.RequestException, OSError, ValueError, KeyError) as error:
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


def choose_signer(client: MlflowClient, tracking_uri: str, env: Mapping[str, str] | None = None) -> Signer:
    """Return who signs: this process for a local SQLite store (one machine), else the service at PLINTH_SIGNER_URL.

    A local store is signed with the key beside it even where the compiled pipeline names the cluster's signer:
    kfp.local runs every step as the user, who holds that key anyway.

    Raises:
        RegistrationError: no signer URL for a registry that is not a local SQLite store.
    """
    env = os.environ if env is None else env
    if signing.local_key_dir(tracking_uri) is not None:
        try:
            key, created = signing.signing_key(tracking_uri, env)
        except signing.SigningError as error:
            raise RegistrationError(f"{error}; registry unchanged") from error
        if created:
            print(
                f"register: made this machine's signing key {key} "
                f"(public key {key.with_name(signing.PUBLIC_KEY_FILE)}, which serving verifies with)"
            )
        return local_signer(client, key)
    url = env.get(ENV_SIGNER_URL, "").strip()
    if not url:
        raise RegistrationError(
            f"no signer: set {ENV_SIGNER_URL} to the signer service (serving/signer) for the registry at "
            f"{tracking_uri}; registry unchanged"
        )
    return remote_signer(url)


def run(
    decision_json: str,
    tracking_uri: str,
    model_name: str,
    parent_run_id: str,
    lineage: dict[str, str],
    trigger: str = "",
    test_path: str = "",
) -> Registration:
    """Step entry: register the gate's winner, have it signed, record the result (and its trigger) on the parent run.

    The winner's global importance is then logged on its run (`importance.py`), from the evaluation rows at
    `test_path` when given; a model whose contributions cannot be computed is registered all the same.
    """
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
        **decision_tags(winner.get("decision")),
        **trigger_tags(trigger),
    }
    description = f"{winner['name']} candidate; gate: {decision['reason']}"
    try:
        signer = choose_signer(client, tracking_uri)
        registration = register(client, winner["model_uri"], model_name, decision["alias"], tags, description, signer)
    except RegistrationError as error:
        tracking.mark_failed(client, parent_run_id, "register", str(error))
        raise
    for tag, value in trigger_tags(trigger).items():
        client.set_tag(parent_run_id, tag, value)
    client.set_tag(parent_run_id, tracking.TAG_VERSION, registration.version)
    client.set_tag(parent_run_id, tracking.TAG_ALIAS, registration.alias)
    client.set_terminated(parent_run_id, status="FINISHED")
    try:
        record = log_importance(client, model_name, registration.version, winner["run_id"], test_path)
        print(f"register: global importance ({record['method']}): {', '.join(list(record['importance'])[:3])}, ...")
    except NotExplainable as error:
        print(f"register: no global importance for this model: {error}")
    print(
        f"register: {model_name} v{registration.version} now has alias '{registration.alias}' "
        f"(files signed, {registration.digest})"
    )
    return registration
