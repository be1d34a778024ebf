"""Registration against a real `mlflow server`, including the server going away mid-pipeline."""

import json

import mlflow
import pytest

from components.common import modeling, tracking
from components.common.features import split_target
from components.common.profile import build_profile
from components.ingest.core import load_source
from components.register.core import RegistrationError, run
from components.train_sklearn.core import build_model

pytestmark = pytest.mark.integration
NAME = "served-model"


def log_candidate(uri: str) -> tuple[str, str, str]:
    frame = load_source("sklearn:breast_cancer")
    profile = build_profile(frame, "target")
    features, labels = split_target(frame, profile)
    client = tracking.connect(uri)
    experiment = tracking.ensure_experiment(client, "server-test", uri)
    with mlflow.start_run(experiment_id=experiment) as candidate:
        model = build_model(profile, seed=0).fit(features, labels)
        model_uri = modeling.log_model(model, features, profile, "sklearn")
    parent = client.create_run(experiment).info.run_id
    return model_uri, candidate.info.run_id, parent


def decision(model_uri: str, run_id: str, alias: str) -> str:
    winner = {"name": "sklearn", "run_id": run_id, "model_uri": model_uri, "metrics": {}, "task": "binary"}
    return json.dumps({"passed": True, "alias": alias, "reason": "test", "winner": winner})


def test_register_through_server_then_server_down_moves_nothing(mlflow_server):
    model_uri, run_id, parent = log_candidate(mlflow_server.uri)
    first = run(decision(model_uri, run_id, "champion"), mlflow_server.uri, NAME, parent, {})
    assert first.version == "1"
    loaded = modeling.load_model(f"models:/{NAME}@champion")
    assert loaded.predict_proba(load_source("sklearn:breast_cancer").drop(columns="target").head(2)).shape == (2, 2)

    mlflow_server.stop()
    with pytest.raises(RegistrationError, match="unreachable") as failure:
        run(decision(model_uri, run_id, "champion"), mlflow_server.uri, NAME, parent, {})
    assert "registry unchanged" in str(failure.value)

    mlflow_server.start()
    client = tracking.connect(mlflow_server.uri)
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert [str(v.version) for v in client.search_model_versions(f"name = '{NAME}'")] == ["1"]
