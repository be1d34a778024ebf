import json
from pathlib import Path

import mlflow
import pytest

from components.common import modeling, signing, tracking
from components.common.candidate import logged_files_digest
from components.common.task import TAG_TASK
from components.register.core import RegistrationError, choose_key, register, run, trigger_tags
from components.train_sklearn.core import build_model

NAME = "unit-model"


@pytest.fixture(scope="module")
def store(tmp_path_factory, tables):
    uri = f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"
    client = tracking.connect(uri)
    experiment = tracking.ensure_experiment(client, "unit", uri)
    table = tables["binary"]
    model = build_model(table.profile, seed=0).fit(table.x_train, table.y_train)
    with mlflow.start_run(experiment_id=experiment) as run_:
        model_uri = modeling.log_model(model, table.x_train, table.profile, "sklearn")
    return {
        "uri": uri,
        "client": client,
        "model_uri": model_uri,
        "digest": logged_files_digest(model_uri),
        "experiment": experiment,
        "run_id": run_.info.run_id,
        "key": choose_key(uri),
    }


def stored_files(client, name: str, version: str) -> Path:
    """The version's files in the artifact store itself (a local directory for a SQLite store)."""
    return Path(client.get_model_version_download_uri(name, version).removeprefix("file://"))


def test_register_signs_the_files_then_creates_version_then_alias(store):
    client = store["client"]
    tags = {"plinth.data_hash": "abc"}
    registration = register(client, store["model_uri"], NAME, "champion", tags, "first", store["key"], store["digest"])
    version = client.get_model_version_by_alias(NAME, "champion")
    assert str(version.version) == registration.version
    assert version.tags["plinth.data_hash"] == "abc"
    assert version.description == "first"
    # The signature lies among the version's files in the store; its digest and key are the version's tags.
    files = stored_files(client, NAME, registration.version)
    assert (files / signing.SIGNATURE_FILE).is_file()
    assert version.tags[signing.TAG_DIGEST] == registration.digest
    public = store["key"].with_name(signing.PUBLIC_KEY_FILE)
    assert version.tags[signing.TAG_KEY] == signing.key_id(public.read_bytes())
    assert signing.check(files, version.tags, public, True, "v").result == signing.VERIFIED


def test_the_local_key_lives_beside_the_sqlite_store(store):
    assert store["key"] == Path(store["uri"].removeprefix("sqlite:///")).parent / "keys" / signing.PRIVATE_KEY_FILE


def test_failure_after_version_is_created_leaves_registry_as_it_was(store):
    client = store["client"]
    before = {v.version for v in client.search_model_versions(f"name = '{NAME}'")}
    # "v9" is a reserved alias name: MLflow refuses it only after the version exists.
    with pytest.raises(RegistrationError, match="was deleted again, alias 'v9' not moved"):
        register(client, store["model_uri"], NAME, "v9", {}, "doomed", store["key"], store["digest"])
    assert {v.version for v in client.search_model_versions(f"name = '{NAME}'")} == before


def test_files_changed_after_training_are_not_signed_or_registered(store, tables):
    """Someone with edit rights on the experiment swaps a file between training and registration."""
    client = store["client"]
    table = tables["binary"]
    model = build_model(table.profile, seed=1).fit(table.x_train, table.y_train)
    with mlflow.start_run(experiment_id=store["experiment"]):
        model_uri = modeling.log_model(model, table.x_train, table.profile, "sklearn")
    trained = logged_files_digest(model_uri)
    files = Path(tracking.model_files_location(model_uri).removeprefix("file://"))
    (files / "MLmodel").write_text((files / "MLmodel").read_text() + "# changed after the gate\n")
    with pytest.raises(RegistrationError, match="changed after training"):
        register(client, model_uri, "swapped-model", "champion", {}, "", store["key"], trained)
    assert not client.search_registered_models("name = 'swapped-model'")
    assert not (files / signing.SIGNATURE_FILE).exists()


def test_bad_model_uri_creates_nothing(store):
    client = store["client"]
    with pytest.raises(RegistrationError, match=r"before a version was created|registry unchanged|deleted again"):
        register(client, "models:/m-does-not-exist", "other-model", "champion", {}, "", store["key"], store["digest"])
    assert not client.search_model_versions("name = 'other-model'")
    assert not client.search_registered_models("name = 'other-model'")


def test_a_failed_first_registration_removes_the_model_it_created(store):
    client = store["client"]
    with pytest.raises(RegistrationError, match="was deleted again, alias 'v9' not moved"):
        register(client, store["model_uri"], "fresh-model", "v9", {}, "doomed", store["key"], store["digest"])
    assert not client.search_registered_models("name = 'fresh-model'")


def test_run_records_lineage_and_closes_parent_run(store, capsys):
    client = store["client"]
    parent = client.create_run(store["experiment"]).info.run_id
    decision = {
        "passed": True,
        "alias": "challenger",
        "reason": "beats champion",
        "winner": {
            "name": "sklearn",
            "run_id": store["run_id"],
            "model_uri": store["model_uri"],
            "metrics": {},
            "task": "binary",
            "files_digest": store["digest"],
        },
    }
    lineage = {"plinth.git_commit": "deadbeef", "plinth.data_hash": "h"}
    registration = run(json.dumps(decision), store["uri"], NAME, parent, lineage)
    assert f"(files signed, {registration.digest})" in capsys.readouterr().out
    version = client.get_model_version(NAME, registration.version)
    assert version.aliases == ["challenger"]
    assert version.tags["plinth.git_commit"] == "deadbeef"
    assert version.tags["plinth.pipeline_run_id"] == parent
    assert version.tags[TAG_TASK] == "binary"
    parent_run = client.get_run(parent)
    assert parent_run.info.status == "FINISHED"
    assert parent_run.data.tags[tracking.TAG_VERSION] == registration.version
    assert not any(tag.startswith("plinth.trigger.") for tag in version.tags)  # a person started it


def test_run_copies_the_trigger_onto_the_version_and_the_run(store):
    client = store["client"]
    parent = client.create_run(store["experiment"]).info.run_id
    winner = {
        "name": "sklearn",
        "run_id": store["run_id"],
        "model_uri": store["model_uri"],
        "task": "binary",
        "files_digest": store["digest"],
    }
    decision = {"passed": True, "alias": "challenger", "reason": "first model", "winner": {**winner, "metrics": {}}}
    trigger = {"kind": "input_drift", "reason": "PSI of x above 0.25", "values": {"psi.x": 0.4}, "time": "t0"}
    registration = run(json.dumps(decision), store["uri"], NAME, parent, {}, json.dumps(trigger))
    for tags in (client.get_model_version(NAME, registration.version).tags, client.get_run(parent).data.tags):
        assert tags["plinth.trigger.kind"] == "input_drift"
        assert tags["plinth.trigger.reason"] == "PSI of x above 0.25"
        assert json.loads(tags["plinth.trigger.values"]) == {"psi.x": 0.4}
        assert tags["plinth.trigger.time"] == "t0"


def test_trigger_tags_refuse_a_trigger_that_is_not_an_object():
    with pytest.raises(ValueError, match="trigger must be a JSON object"):
        trigger_tags("[1]")


def test_a_server_registry_without_a_signing_key_is_left_unchanged(store, monkeypatch):
    monkeypatch.delenv(signing.ENV_SIGNING_KEY, raising=False)
    with pytest.raises(RegistrationError, match=r"set PLINTH_SIGNING_KEY.*registry unchanged"):
        choose_key("http://mlflow.example:5000")


def test_unreachable_server_fails_fast(tmp_path: Path):
    from components.register.core import ensure_reachable

    with pytest.raises(RegistrationError, match=r"unreachable at http://127\.0\.0\.1:9"):
        ensure_reachable("http://127.0.0.1:9")
