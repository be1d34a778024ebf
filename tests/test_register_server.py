"""Registration against a real `mlflow server`, including the server going away mid-pipeline."""

import json
from pathlib import Path

import mlflow
import pytest

from components.common import modeling, signing, tracking
from components.common.candidate import logged_files_digest
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
    winner = {
        "name": "sklearn",
        "run_id": run_id,
        "model_uri": model_uri,
        "metrics": {},
        "task": "binary",
        "files_digest": logged_files_digest(model_uri),
    }
    return json.dumps({"passed": True, "alias": alias, "reason": "test", "winner": winner})


def test_register_through_server_then_server_down_moves_nothing(mlflow_server, tmp_path, monkeypatch):
    model_uri, run_id, parent = log_candidate(mlflow_server.uri)
    # A registry on a server signs with the configured key only (in a cluster: a mounted Secret).
    monkeypatch.delenv(signing.ENV_SIGNING_KEY, raising=False)
    with pytest.raises(RegistrationError, match="set PLINTH_SIGNING_KEY"):
        run(decision(model_uri, run_id, "champion"), mlflow_server.uri, NAME, parent, {})
    key, _ = signing.signing_key(f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}", env={})
    monkeypatch.setenv(signing.ENV_SIGNING_KEY, str(key))
    client = tracking.connect(mlflow_server.uri)
    parent = client.create_run(client.get_experiment_by_name("server-test").experiment_id).info.run_id  # a fresh one
    first = run(decision(model_uri, run_id, "champion"), mlflow_server.uri, NAME, parent, {})
    assert first.version == "1"
    loaded = modeling.load_model(f"models:/{NAME}@champion")
    assert loaded.predict_proba(load_source("sklearn:breast_cancer").drop(columns="target").head(2)).shape == (2, 2)
    # model.sig went through the server's artifact proxy, and what comes back verifies.
    files = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(NAME, "1"), dst_path=str(tmp_path / "fetched")
        )
    )
    tags = client.get_model_version(NAME, "1").tags
    verdict = signing.check(files, tags, key.with_name(signing.PUBLIC_KEY_FILE), True, f"{NAME} v1")
    assert verdict.result == signing.VERIFIED, verdict.message

    again = decision(model_uri, run_id, "champion")
    mlflow_server.stop()
    with pytest.raises(RegistrationError, match="unreachable") as failure:
        run(again, mlflow_server.uri, NAME, parent, {})
    assert "registry unchanged" in str(failure.value)

    mlflow_server.start()
    client = tracking.connect(mlflow_server.uri)
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert [str(v.version) for v in client.search_model_versions(f"name = '{NAME}'")] == ["1"]
