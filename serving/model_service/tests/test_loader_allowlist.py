"""A model that brings its own loader module never runs its code in the service unless someone allowed it.

Each model here is an unsigned pyfunc model whose `loader_module` lives in its own `code/` directory and writes
a marker file when imported (`custom_loader.py`). No signature is required, so only the loader allow-list stands
between the registry and the import: refused, the marker is never written, the service is never ready and says
which variable allows it; allowed by loader module or by model name, it serves.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from bentoml.exceptions import ServiceUnavailable

from components.common import signing
from components.common.loaders import ENV_ALLOWED_FOREIGN_MODELS, ENV_ALLOWED_LOADERS
from serving.bench.demo_model import RegisteredModel
from serving.model_service import registry, settings
from serving.model_service.predictor import PyfuncPredictor

from .custom_loader import MarkerModel, log_marker_model
from .test_verification import SERVICE_LOGGER, records, service_of, verification

NO_SIGNATURE = {settings.ENV_REQUIRE_SIGNATURE: "false"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('loaders') / 'mlflow.db'}"


@pytest.fixture
def marker_model(store: str, tmp_path: Path) -> MarkerModel:
    """A fresh model (and loader module name) per test, so one test's import never answers for another's."""
    return log_marker_model(store, f"own-loader-{tmp_path.name[-12:]}", tmp_path)


def as_registered(model: MarkerModel) -> RegisteredModel:
    """The fields `service_of` and `verification` read."""
    return RegisteredModel(model.tracking_uri, model.name, model.version, None, None, None)  # type: ignore[arg-type]


def test_an_own_loader_is_refused_before_it_is_imported(
    marker_model: MarkerModel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, SERVICE_LOGGER):
        service = service_of(as_registered(marker_model), **NO_SIGNATURE)
    assert not service.__is_ready__()
    with pytest.raises(ServiceUnavailable, match=ENV_ALLOWED_LOADERS):
        service.predict(marker_model.instances())
    assert not marker_model.marker.exists(), "the model's loader module ran in the service"
    assert marker_model.module not in sys.modules
    [error] = records(caplog, logging.ERROR)
    assert error.startswith(
        f"{marker_model.name} v{marker_model.version} refused: its loader module {marker_model.module} is not plinth's"
    )
    assert ENV_ALLOWED_FOREIGN_MODELS in error
    assert verification(as_registered(marker_model), signing.LOADER_REFUSED) == 1


def test_fetch_refuses_it_without_importing_anything(marker_model: MarkerModel) -> None:
    env = {settings.ENV_TRACKING_URI: marker_model.tracking_uri, settings.ENV_MODEL_NAME: marker_model.name}
    with pytest.raises(registry.ModelRefused) as refused:
        registry.fetch(settings.Settings.from_env({**env, **NO_SIGNATURE}))
    assert refused.value.verdict.result == signing.LOADER_REFUSED
    assert not marker_model.marker.exists()


@pytest.mark.parametrize("allow", ["loader", "name"])
def test_an_allowed_loader_is_served(marker_model: MarkerModel, allow: str) -> None:
    allowed = (
        {ENV_ALLOWED_LOADERS: f"mlflow.sklearn, {marker_model.module}"}
        if allow == "loader"
        else {ENV_ALLOWED_FOREIGN_MODELS: marker_model.name}
    )
    service = service_of(as_registered(marker_model), **NO_SIGNATURE, **allowed)
    assert service.__is_ready__()
    assert [row["prediction"] for row in service.predict(marker_model.instances())] == [0.0, 0.0]
    assert marker_model.marker.exists()


def test_another_models_allowance_does_not_cover_it(marker_model: MarkerModel) -> None:
    service = service_of(as_registered(marker_model), **NO_SIGNATURE, **{ENV_ALLOWED_FOREIGN_MODELS: "someone-else"})
    assert not service.__is_ready__()
    assert not marker_model.marker.exists()


def test_a_list_that_is_not_module_names_stops_the_service_naming_the_variable() -> None:
    with pytest.raises(settings.SettingsError, match=f"^{ENV_ALLOWED_LOADERS}: 'evil; rm' is not a Python module"):
        settings.Settings.from_env({ENV_ALLOWED_LOADERS: "mlflow.sklearn,evil; rm"})


def test_a_registry_uri_with_credentials_never_shows_its_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry cannot be reached: the error names it, user and password masked, and so does its reason."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    uri = "http://user:secret@127.0.0.1:9/mlflow?token=abc"
    loaded = settings.Settings.from_env({settings.ENV_TRACKING_URI: uri})
    with pytest.raises(registry.ModelLoadError) as failed:
        registry.fetch(loaded)
    message = str(failed.value)
    assert "http://***@127.0.0.1:9/mlflow?***" in message
    assert "secret" not in message
    assert "abc" not in message


def test_the_pyfunc_path_refuses_it_too_when_handed_files_without_fetch(
    marker_model: MarkerModel, tmp_path: Path
) -> None:
    """Defence in depth: whoever builds a ModelRef by hand still cannot make the service import the loader."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import Model

    client = MlflowClient(tracking_uri=marker_model.tracking_uri, registry_uri=marker_model.tracking_uri)
    source = client.get_model_version_download_uri(marker_model.name, marker_model.version)
    files = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp_path / "files")))
    ref = registry.ModelRef(marker_model.name, marker_model.version, files, Model.load(str(files / "MLmodel")), [])
    with pytest.raises(registry.ModelRefused, match=ENV_ALLOWED_LOADERS):
        PyfuncPredictor(ref, settings.Settings())
    assert not marker_model.marker.exists()
