"""Registration against a real `mlflow server` and the signer service on 127.0.0.1, and the server going away."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import requests

from components.common import signing, tracking
from components.common.modeling import load_model
from components.common.profile import build_profile
from components.ingest.core import load_source
from components.register.core import ENV_SIGNER_URL, RegistrationError, run
from components.register.tests.pipeline_run import Trained, trained
from components.train_sklearn.core import as_saved, build_model
from serving.signer.server import serve
from tests.servers import MlflowServer

pytestmark = pytest.mark.integration
NAME = "served-model"


def log_candidate(uri: str) -> Trained:
    frame = load_source("sklearn:breast_cancer")
    profile = build_profile(frame, "target")
    features, labels = frame.drop(columns="target"), frame["target"]
    client = tracking.connect(uri)
    experiment = tracking.ensure_experiment(client, "server-test", uri)
    model = as_saved(build_model(profile, seed=0).fit(features, labels))
    return trained(client, experiment, model, features, profile)


@pytest.fixture
def signer(mlflow_server: MlflowServer, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The signer service on 127.0.0.1 against the MLflow server, with a key no register step sees."""
    key, _ = signing.signing_key(f"sqlite:///{tmp_path / 'signer' / 'mlflow.db'}", env={})
    server = serve(tracking.connect(mlflow_server.uri), key, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", key.with_name(signing.PUBLIC_KEY_FILE)
    server.shutdown()
    server.server_close()


def test_the_signer_signs_what_register_created_then_the_server_goes_down(mlflow_server, signer, tmp_path, monkeypatch):
    url, public = signer
    winner = log_candidate(mlflow_server.uri)
    # A registry on a server: the step holds no key and needs a signer.
    monkeypatch.delenv(ENV_SIGNER_URL, raising=False)
    with pytest.raises(RegistrationError, match="set PLINTH_SIGNER_URL"):
        run(json.dumps(winner.decision()), mlflow_server.uri, NAME, winner.parent, {})
    monkeypatch.setenv(ENV_SIGNER_URL, url)
    winner = log_candidate(mlflow_server.uri)
    first = run(json.dumps(winner.decision()), mlflow_server.uri, NAME, winner.parent, {})
    client = tracking.connect(mlflow_server.uri)
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == first.version
    loaded = load_model(f"models:/{NAME}@champion")
    assert loaded.predict_proba(load_source("sklearn:breast_cancer").drop(columns="target").head(2)).shape == (2, 2)
    # The statement and model.sig went through the server's artifact proxy, and what comes back verifies.
    files = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(NAME, first.version), dst_path=str(tmp_path / "fetched")
        )
    )
    tags = client.get_model_version(NAME, first.version).tags
    verdict = signing.check(files, tags, public, True, NAME, first.version)
    assert verdict.result == signing.VERIFIED, verdict.message
    assert tags[signing.TAG_DIGEST] == first.digest

    # A loser of its gate: the signer refuses over HTTP, the step deletes its version and says why.
    loser = trained(
        client,
        client.get_experiment_by_name("server-test").experiment_id,
        load_model(f"models:/{NAME}/{first.version}"),
        load_source("sklearn:breast_cancer").drop(columns="target"),
        build_profile(load_source("sklearn:breast_cancer"), "target"),
        won=False,
    )
    with pytest.raises(RegistrationError, match=r"answered 403: .*is not the gate's winner.*deleted again"):
        run(json.dumps(loser.decision("challenger")), mlflow_server.uri, NAME, loser.parent, {})
    assert [str(v.version) for v in client.search_model_versions(f"name = '{NAME}'")] == [first.version]
    metrics = requests.get(f"{url}/metrics", timeout=5).text
    assert 'plinth_signer_requests_total{result="signed"} ' in metrics
    assert 'plinth_signer_requests_total{result="refused"} ' in metrics

    again = log_candidate(mlflow_server.uri)
    mlflow_server.stop()
    with pytest.raises(RegistrationError, match="unreachable") as failure:
        run(json.dumps(again.decision()), mlflow_server.uri, NAME, again.parent, {})
    assert "registry unchanged" in str(failure.value)
    mlflow_server.start()
    client = tracking.connect(mlflow_server.uri)
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == first.version
    assert [str(v.version) for v in client.search_model_versions(f"name = '{NAME}'")] == [first.version]


def test_the_signer_answers_bad_requests_with_the_field_and_health(signer):
    url, _ = signer
    assert requests.get(f"{url}/healthz", timeout=5).text == "ok\n"
    for body, field in (({"version": "1"}, "field name"), ({"name": "m", "version": "one"}, "field version")):
        answer = requests.post(f"{url}/sign", json=body, timeout=5)
        assert answer.status_code == 400
        assert field in answer.json()["error"]
    missing = requests.post(f"{url}/sign", json={"name": "nope", "version": "1"}, timeout=30)
    assert missing.status_code == 403
    assert "nope v1 does not exist" in missing.json()["error"]
    huge = requests.post(f"{url}/sign", data=b"x" * 10_000, timeout=5)
    assert huge.status_code == 413
