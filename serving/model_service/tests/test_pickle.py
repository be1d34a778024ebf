"""With MLFLOW_ALLOW_PICKLE_DESERIALIZATION false (the chart's default), plinth's models serve and pickles do not.

plinth's own model is stored in skops's format and loads without the opt-in. A model logged by a notebook
with `mlflow.sklearn.log_model` as a cloudpickle, or a `mlflow.pyfunc.PythonModel`, is refused before it is
loaded: never ready, /predict 503, one log line naming the setting, `plinth_model_verification{result=
"pickle_refused"}`; with the opt-in it serves.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from bentoml.exceptions import ServiceUnavailable, UnprocessableEntity

from components.common import signing
from components.common.loaders import ENV_ALLOWED_LOADERS
from serving.bench.demo_model import (
    RegisteredModel,
    register_plain_sklearn,
    register_plinth_model,
    register_python_model,
)

from .conftest import CHURN, Server, env_for, free_port, metric, scrape
from .test_verification import SERVICE_LOGGER, records, service_of, verification

ALLOW_PICKLE = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
OPT_IN = "chart value model.allowPickle=true"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('pickles') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def plinth_model(store: str) -> RegisteredModel:
    return register_plinth_model(store, "plinth-skops", experiment="pickles")


@pytest.fixture(scope="module")
def notebook_pickle(plinth_model: RegisteredModel) -> RegisteredModel:
    """The same fitted estimator, logged as a notebook does: plain `mlflow.sklearn.log_model`, a cloudpickle."""
    model = plinth_model
    return register_plain_sklearn(model.tracking_uri, "notebook-pickle", model.model, model.features, model.task)


@pytest.fixture(scope="module")
def python_model(store: str) -> RegisteredModel:
    churn = register_plinth_model(store, "churn-for-rule", CHURN, "pickles")
    return register_python_model(store, "rule-pickle", churn.features, churn.task)


@pytest.fixture
def pickles(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """Set the opt-in for the whole test (the service loads a plinth model after its import, in `__init__`)."""
    monkeypatch.setenv(ALLOW_PICKLE, request.param)
    return str(request.param)


@pytest.mark.parametrize("pickles", ["false"], indirect=True)
def test_a_plinth_model_serves_with_pickles_disallowed(plinth_model: RegisteredModel, pickles: str) -> None:
    service = service_of(plinth_model, **{ALLOW_PICKLE: pickles})
    assert service.__is_ready__()
    answers = service.predict(plinth_model.instances(0, 5))
    np.testing.assert_allclose([a["probability"] for a in answers], plinth_model.expected(0, 5)[:, 1], rtol=1e-12)
    assert verification(plinth_model, signing.VERIFIED) == 1


@pytest.mark.parametrize("pickles", ["false"], indirect=True)
@pytest.mark.parametrize("which", ["notebook_pickle", "python_model"])
def test_a_pickle_is_refused_without_the_opt_in(
    request: pytest.FixtureRequest, which: str, pickles: str, caplog: pytest.LogCaptureFixture
) -> None:
    model: RegisteredModel = request.getfixturevalue(which)
    # A PythonModel's loader is not plinth's: allowed here, so that what refuses it is the pickle check.
    allow = {ENV_ALLOWED_LOADERS: "mlflow.pyfunc.model"} if which == "python_model" else {}
    with caplog.at_level(logging.INFO, SERVICE_LOGGER):
        service = service_of(model, **{ALLOW_PICKLE: pickles}, **allow)
    assert not service.__is_ready__()
    with pytest.raises(ServiceUnavailable, match=OPT_IN):
        service.predict(model.instances(0, 1))
    with pytest.raises(ServiceUnavailable, match=OPT_IN):  # /explain: the same refusal
        service.explain(model.instances(0, 1))
    errors = records(caplog, logging.ERROR)
    assert len(errors) == 1
    assert errors[0].startswith(f"{model.name} v{model.version} refused: its files are a pickle")
    assert f"{ALLOW_PICKLE} is false" in errors[0]
    assert verification(model, signing.PICKLE_REFUSED) == 1


@pytest.mark.parametrize("pickles", ["true"], indirect=True)
def test_a_pickle_serves_with_the_opt_in(notebook_pickle: RegisteredModel, pickles: str) -> None:
    service = service_of(notebook_pickle, **{ALLOW_PICKLE: pickles})
    assert service.__is_ready__()
    answers = service.predict(notebook_pickle.instances(0, 5))
    np.testing.assert_allclose([a["probability"] for a in answers], notebook_pickle.expected(0, 5)[:, 1], rtol=1e-12)
    with pytest.raises(UnprocessableEntity, match="plinth's own models only"):  # served through pyfunc
        service.explain(notebook_pickle.instances(0, 1))
    # Unsigned (the signer never signs a pickle); the refusal above set its own label.
    assert verification(notebook_pickle, signing.UNVERIFIED) == 1


@pytest.mark.integration
def test_a_real_server_refuses_a_pickle_stays_unready_and_says_why_once(
    notebook_pickle: RegisteredModel, tmp_path: Path
) -> None:
    server = Server(env_for(notebook_pickle, **{ALLOW_PICKLE: "false"}), tmp_path, free_port())
    labels = {"model_name": notebook_pickle.name, "model_version": notebook_pickle.version}
    try:
        refused = 0.0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not refused:
            assert server.alive(), server.log_tail()
            try:
                refused = metric(scrape(server.url), "plinth_model_verification", **labels, result="pickle_refused")
            except httpx.HTTPError:
                time.sleep(0.2)
        assert refused == 1, server.log_tail()
        assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 503
        answer = httpx.post(f"{server.url}/predict", json={"instances": notebook_pickle.instances(0, 1)}, timeout=10)
        assert answer.status_code == 503
        explained = httpx.post(f"{server.url}/explain", json={"instances": notebook_pickle.instances(0, 1)}, timeout=10)
        assert (explained.status_code, explained.json()["error"]) == (503, answer.json()["error"])
        log = server.log_path.read_text(errors="replace")
        assert sum(OPT_IN in row for row in log.splitlines()) == 1, log[-3000:]
        assert "Traceback" not in log
    finally:
        server.stop()
