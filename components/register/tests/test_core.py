import json
from pathlib import Path

import mlflow
import pytest

from components.common import modeling, tracking
from components.common.task import TAG_TASK
from components.register.core import RegistrationError, register, run
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
        "experiment": experiment,
        "run_id": run_.info.run_id,
    }


def test_register_creates_version_then_alias(store):
    client = store["client"]
    registration = register(client, store["model_uri"], NAME, "champion", {"plinth.data_hash": "abc"}, "first")
    version = client.get_model_version_by_alias(NAME, "champion")
    assert str(version.version) == registration.version
    assert version.tags["plinth.data_hash"] == "abc"
    assert version.description == "first"


def test_failure_after_version_is_created_leaves_registry_as_it_was(store):
    client = store["client"]
    before = {v.version for v in client.search_model_versions(f"name = '{NAME}'")}
    # "v9" is a reserved alias name: MLflow refuses it only after the version exists.
    with pytest.raises(RegistrationError, match="was deleted again, alias 'v9' not moved"):
        register(client, store["model_uri"], NAME, "v9", {}, "doomed")
    assert {v.version for v in client.search_model_versions(f"name = '{NAME}'")} == before


def test_bad_model_uri_creates_nothing(store):
    client = store["client"]
    with pytest.raises(RegistrationError, match=r"before a version was created|registry unchanged|deleted again"):
        register(client, "models:/m-does-not-exist", "other-model", "champion", {}, "")
    assert not client.search_model_versions("name = 'other-model'")
    assert not client.search_registered_models("name = 'other-model'")


def test_a_failed_first_registration_removes_the_model_it_created(store):
    client = store["client"]
    with pytest.raises(RegistrationError, match="was deleted again, alias 'v9' not moved"):
        register(client, store["model_uri"], "fresh-model", "v9", {}, "doomed")
    assert not client.search_registered_models("name = 'fresh-model'")


def test_run_records_lineage_and_closes_parent_run(store):
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
        },
    }
    lineage = {"plinth.git_commit": "deadbeef", "plinth.data_hash": "h"}
    registration = run(json.dumps(decision), store["uri"], NAME, parent, lineage)
    version = client.get_model_version(NAME, registration.version)
    assert version.aliases == ["challenger"]
    assert version.tags["plinth.git_commit"] == "deadbeef"
    assert version.tags["plinth.pipeline_run_id"] == parent
    assert version.tags[TAG_TASK] == "binary"
    parent_run = client.get_run(parent)
    assert parent_run.info.status == "FINISHED"
    assert parent_run.data.tags[tracking.TAG_VERSION] == registration.version


def test_unreachable_server_fails_fast(tmp_path: Path):
    from components.register.core import ensure_reachable

    with pytest.raises(RegistrationError, match=r"unreachable at http://127\.0\.0\.1:9"):
        ensure_reachable("http://127.0.0.1:9")
