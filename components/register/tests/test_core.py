import json
from pathlib import Path

import mlflow
import pytest

from components.common import signing, tracking
from components.common.decision import Decision
from components.common.task import TAG_TASK
from components.register.core import (
    RegistrationError,
    choose_signer,
    local_signer,
    register,
    run,
    trigger_tags,
)
from components.register.importance import TAG_TOP
from components.register.tests.pipeline_run import Trained, trained
from components.train_sklearn.core import as_saved, build_model

NAME = "unit-model"


@pytest.fixture(scope="module")
def store(tmp_path_factory, tables):
    uri = f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"
    client = tracking.connect(uri)
    experiment = tracking.ensure_experiment(client, "unit", uri)
    table = tables["binary"]
    model = as_saved(build_model(table.profile, seed=0).fit(table.x_train, table.y_train))
    key, _ = signing.signing_key(uri, env={})

    def candidate(won: bool = True) -> Trained:
        return trained(client, experiment, model, table.x_train, table.profile, won=won)

    return {"uri": uri, "client": client, "experiment": experiment, "key": key, "candidate": candidate}


def stored_files(client, name: str, version: str) -> Path:
    """The version's files in the artifact store itself (a local directory for a SQLite store)."""
    return Path(client.get_model_version_download_uri(name, version).removeprefix("file://"))


def versions(client, name: str) -> set[str]:
    return {str(v.version) for v in client.search_model_versions(f"name = '{name}'")}


def test_register_creates_the_version_then_signs_it_then_moves_the_alias(store):
    client, winner = store["client"], store["candidate"]()
    signer = local_signer(client, store["key"])
    registration = register(client, winner.model_uri, NAME, "champion", {"plinth.data_hash": "abc"}, "first", signer)
    version = client.get_model_version_by_alias(NAME, "champion")
    assert str(version.version) == registration.version
    assert version.tags["plinth.data_hash"] == "abc"
    assert version.description == "first"
    # The statement and the signature lie among the version's files; digest and key are the version's tags.
    files = stored_files(client, NAME, registration.version)
    assert (files / signing.SIGNATURE_FILE).is_file()
    statement = json.loads((files / signing.STATEMENT_FILE).read_text())
    assert (statement["name"], statement["version"], statement["run_id"]) == (NAME, registration.version, winner.run_id)
    assert statement["pipeline_run_id"] == winner.parent
    assert statement["gate"]["metrics"] == {"roc_auc": 0.99}
    assert version.tags[signing.TAG_DIGEST] == registration.digest
    public = store["key"].with_name(signing.PUBLIC_KEY_FILE)
    assert version.tags[signing.TAG_KEY] == signing.key_id(public.read_bytes())
    verdict = signing.check(files, version.tags, public, True, NAME, registration.version)
    assert verdict.result == signing.VERIFIED, verdict.message


def test_the_local_key_lives_beside_the_sqlite_store(store):
    assert store["key"] == Path(store["uri"].removeprefix("sqlite:///")).parent / "keys" / signing.PRIVATE_KEY_FILE


def test_a_signer_refusal_deletes_the_version_and_names_the_reason(store):
    """The gate chose another run: the signer refuses, the version goes again, the alias stays."""
    client, loser = store["client"], store["candidate"](won=False)
    before = versions(client, NAME)
    with pytest.raises(RegistrationError, match=r"is not the gate's winner.*deleted again, alias 'challenger' not"):
        register(client, loser.model_uri, NAME, "challenger", {}, "doomed", local_signer(client, store["key"]))
    assert versions(client, NAME) == before
    assert "challenger" not in client.get_registered_model(NAME).aliases


def test_failure_after_version_is_created_leaves_registry_as_it_was(store):
    client, winner = store["client"], store["candidate"]()
    before = versions(client, NAME)
    # "v9" is a reserved alias name: MLflow refuses it only after the version exists.
    with pytest.raises(RegistrationError, match="was deleted again, alias 'v9' not moved"):
        register(client, winner.model_uri, NAME, "v9", {}, "doomed", local_signer(client, store["key"]))
    assert versions(client, NAME) == before


def test_files_changed_after_training_are_not_signed_or_registered(store):
    """Someone with edit rights on the experiment swaps a file between training and registration."""
    client, winner = store["client"], store["candidate"]()
    files = Path(tracking.model_files_location(winner.model_uri).removeprefix("file://"))
    (files / "MLmodel").write_text((files / "MLmodel").read_text() + "# changed after the gate\n")
    with pytest.raises(RegistrationError, match=r"not what run \w+ trained"):
        register(client, winner.model_uri, "swapped-model", "champion", {}, "", local_signer(client, store["key"]))
    assert not client.search_registered_models("name = 'swapped-model'")
    assert not (files / signing.SIGNATURE_FILE).exists()
    assert not (files / signing.STATEMENT_FILE).exists()


def test_bad_model_uri_creates_nothing(store):
    client = store["client"]
    with pytest.raises(RegistrationError, match=r"before a version was created|registry unchanged|deleted again"):
        register(
            client, "models:/m-does-not-exist", "other-model", "champion", {}, "", local_signer(client, store["key"])
        )
    assert not client.search_model_versions("name = 'other-model'")
    assert not client.search_registered_models("name = 'other-model'")


def test_run_records_lineage_and_closes_parent_run(store, capsys, tables, tmp_path):
    client, winner = store["client"], store["candidate"]()
    decision = winner.decision("challenger", "beats champion")
    decision["winner"]["decision"] = Decision(0.375, "cost:1,5", "sigmoid", 0.08, 0.015, True, 364).metadata()
    lineage = {"plinth.git_commit": "deadbeef", "plinth.data_hash": "h"}
    table = tables["binary"]
    test_path = tmp_path / "test.parquet"
    table.x_test.assign(target=table.y_test).to_parquet(test_path)
    registration = run(json.dumps(decision), store["uri"], NAME, winner.parent, lineage, test_path=str(test_path))
    out = capsys.readouterr().out
    assert f"(files signed, {registration.digest})" in out
    # Global importance: on the candidate's run (the version's source), from the evaluation rows.
    record = mlflow.artifacts.load_dict(f"runs:/{winner.run_id}/explain/importance.json")
    assert (record["method"], record["units"], record["rows_from"]) == ("linear", "log_odds", "evaluation")
    assert record["rows"] == len(table.x_test)
    importance = record["importance"]
    assert set(importance) == set(table.x_test.columns)
    assert list(importance.values()) == sorted(importance.values(), reverse=True)
    assert all(value > 0 for value in importance.values())
    assert "explain/importance.png" in {a.path for a in client.list_artifacts(winner.run_id, "explain")}
    top = ", ".join(list(importance)[:3])
    assert client.get_model_version(NAME, registration.version).tags[TAG_TOP] == top
    assert f"register: global importance (linear): {top}, ..." in out
    version = client.get_model_version(NAME, registration.version)
    assert version.aliases == ["challenger"]
    assert version.tags["plinth.git_commit"] == "deadbeef"
    assert version.tags["plinth.pipeline_run_id"] == winner.parent
    assert version.tags[TAG_TASK] == "binary"
    assert float(version.tags["plinth.ece"]) == 0.08
    assert float(version.tags["plinth.ece_calibrated"]) == 0.015
    assert float(version.tags["plinth.threshold"]) == 0.375
    assert (version.tags["plinth.refit"], version.tags["plinth.fit_rows"]) == ("true", "364")  # train + validation
    parent_run = client.get_run(winner.parent)
    assert parent_run.info.status == "FINISHED"
    assert parent_run.data.tags[tracking.TAG_VERSION] == registration.version
    assert not any(tag.startswith("plinth.trigger.") for tag in version.tags)  # a person started it


def test_run_copies_the_trigger_onto_the_version_and_the_run(store):
    client, winner = store["client"], store["candidate"]()
    trigger = {"kind": "input_drift", "reason": "PSI of x above 0.25", "values": {"psi.x": 0.4}, "time": "t0"}
    decision = winner.decision("challenger", "first model")
    registration = run(json.dumps(decision), store["uri"], NAME, winner.parent, {}, json.dumps(trigger))
    for tags in (client.get_model_version(NAME, registration.version).tags, client.get_run(winner.parent).data.tags):
        assert tags["plinth.trigger.kind"] == "input_drift"
        assert tags["plinth.trigger.reason"] == "PSI of x above 0.25"
        assert json.loads(tags["plinth.trigger.values"]) == {"psi.x": 0.4}
        assert tags["plinth.trigger.time"] == "t0"
    assert not {"plinth.ece", "plinth.threshold"} & set(client.get_model_version(NAME, registration.version).tags)
    # Without evaluation rows, importance is computed on a sample drawn from the reference profile.
    record = mlflow.artifacts.load_dict(f"runs:/{winner.run_id}/explain/importance.json")
    assert (record["rows_from"], record["rows"]) == ("reference_profile_sample", 200)


def test_trigger_tags_refuse_a_trigger_that_is_not_an_object():
    with pytest.raises(ValueError, match="trigger must be a JSON object"):
        trigger_tags("[1]")


def test_a_server_registry_without_a_signer_url_is_left_unchanged(store):
    """In a cluster the step holds no key: even a configured key file does not make it sign in-process."""
    env = {signing.ENV_SIGNING_KEY: str(store["key"])}
    with pytest.raises(RegistrationError, match=r"set PLINTH_SIGNER_URL .*registry unchanged"):
        choose_signer(store["client"], "http://mlflow.example:5000", env)


def test_unreachable_server_fails_fast(tmp_path: Path):
    from components.register.core import ensure_reachable

    with pytest.raises(RegistrationError, match=r"unreachable at http://127\.0\.0\.1:9"):
        ensure_reachable("http://127.0.0.1:9")
