"""The rollout refuses, before any traffic, a canary whose MLflow loader is not plinth's and not allow-listed.

The canary is an unsigned pyfunc model whose `loader_module` lives in its own `code/` directory and writes a
marker file when imported (`serving/model_service/tests/custom_loader.py`); no signature is required here, so
only the loader allow-list refuses it. The check reads the MLmodel as YAML: the marker is never written.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from components.common import signing
from components.common.loaders import ENV_ALLOWED_FOREIGN_MODELS, ENV_ALLOWED_LOADERS
from serving.model_service.tests.custom_loader import MarkerModel, log_marker_model
from serving.rollout.edges.inspect_model import verify_version
from serving.rollout.edges.mlflow_registry import MlflowRegistry

MODEL = "own-loader-canary"


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[MarkerModel, MarkerModel]:
    """v1 (stable) and v2 (canary) of one model, each with a loader module of its own."""
    root = tmp_path_factory.mktemp("loader-canary")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return log_marker_model(uri, MODEL, root), log_marker_model(uri, MODEL, root, alias=None)


@pytest.fixture(autouse=True)
def no_allowances(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_ALLOWED_LOADERS, raising=False)
    monkeypatch.delenv(ENV_ALLOWED_FOREIGN_MODELS, raising=False)


def edge(model: MarkerModel) -> MlflowRegistry:
    client = MlflowClient(tracking_uri=model.tracking_uri, registry_uri=model.tracking_uri)
    return MlflowRegistry(client, model.tracking_uri, MODEL, "test", None, require_signature=False)


def test_a_canary_with_its_own_loader_is_refused_before_traffic_and_never_imported(versions) -> None:
    stable, canary = versions
    reason = edge(canary).refusal(stable.version, canary.version)
    assert reason is not None
    assert reason.startswith(f"{MODEL} v{canary.version} refused: its loader module {canary.module} is not plinth's")
    assert ENV_ALLOWED_LOADERS in reason
    assert ENV_ALLOWED_FOREIGN_MODELS in reason
    assert not canary.marker.exists()
    assert canary.module not in sys.modules


def test_the_verdict_is_loader_refused_even_where_no_signature_is_required(versions) -> None:
    _, canary = versions
    client = MlflowClient(tracking_uri=canary.tracking_uri, registry_uri=canary.tracking_uri)
    verdict = verify_version(client, canary.tracking_uri, MODEL, canary.version, None, False)
    assert (verdict.result, verdict.refused) == (signing.LOADER_REFUSED, True)


@pytest.mark.parametrize("allowance", ["loader", "name"])
def test_an_allow_listed_canary_may_be_tried(versions, monkeypatch: pytest.MonkeyPatch, allowance: str) -> None:
    stable, canary = versions
    if allowance == "loader":
        monkeypatch.setenv(ENV_ALLOWED_LOADERS, canary.module)
    else:
        monkeypatch.setenv(ENV_ALLOWED_FOREIGN_MODELS, MODEL)
    assert edge(canary).refusal(stable.version, canary.version) is None
    assert not canary.marker.exists()  # allowed is not loaded: the controller never imports a model


def test_an_allowance_that_cannot_be_read_refuses(versions, monkeypatch: pytest.MonkeyPatch) -> None:
    stable, canary = versions
    monkeypatch.setenv(ENV_ALLOWED_LOADERS, "not a module")
    reason = edge(canary).refusal(stable.version, canary.version)
    assert reason == f"{MODEL} v{canary.version} refused: {ENV_ALLOWED_LOADERS}: 'not a module' is not a Python " + (
        "module name (comma-separated, e.g. mlflow.sklearn)"
    )


def test_a_registry_password_never_reaches_the_controllers_log(
    versions, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    uri = "http://user:secret@127.0.0.1:9/?token=abc"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    registry = MlflowRegistry(client, uri, MODEL, "test", None, require_signature=False)
    with caplog.at_level("WARNING", "plinth.rollout"):
        assert registry.refusal("1", "2") is None  # unknown, not refused: the canary pods check for themselves
        assert registry.digest("2") is None
    assert caplog.records, "the failures are logged"
    assert "secret" not in caplog.text
    assert "abc" not in caplog.text
