"""Shared fixtures: a real MLflow registry with one champion per task, and the service built against each.

The service module resolves its model when imported, from the environment. `import_service` sets that
environment only for the import and restores it at once, so nothing a test sets outlives it; servers get
their environment explicitly.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from serving.bench.demo_model import RegisteredModel, register_plinth_model
from serving.embedded.processes import ManagedProcess, free_port
from serving.embedded.train_drill import DrillData
from serving.model_service import settings
from serving.model_service.live_quality import LiveQuality
from serving.model_service.store import PredictionStore

SERVICE_MODULE = "serving.model_service.service"
WINE = DrillData("sklearn:wine")
DIABETES = DrillData("sklearn:diabetes")
CHURN = DrillData("synthetic:churn", "churned")
# The labelling client every test server knows (PLINTH_FEEDBACK_TOKENS), and the header that sends its labels.
FEEDBACK_CLIENT, FEEDBACK_TOKEN = "tests", "tests-labelling-token-0123456789"
AUTH = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}


def env_for(model: RegisteredModel, **extra: str) -> dict[str, str]:
    """Return the variables that point the service at `model`'s champion."""
    return {
        settings.ENV_TRACKING_URI: model.tracking_uri,
        settings.ENV_MODEL_NAME: model.name,
        settings.ENV_MODEL_ALIAS: "champion",
        settings.ENV_FEEDBACK_TOKENS: f"{FEEDBACK_CLIENT}={FEEDBACK_TOKEN}",
        **extra,
    }


def import_service(env: dict[str, str]) -> ModuleType:
    """Import a fresh service.py resolved against `env`; the process environment is restored before returning."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        sys.modules.pop(SERVICE_MODULE, None)
        try:
            return importlib.import_module(SERVICE_MODULE)
        finally:
            sys.modules.pop(SERVICE_MODULE, None)


@pytest.fixture(scope="session", autouse=True)
def prediction_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Predictions stored by the services these tests start go to a temporary SQLite file, not `.plinth/`."""
    path = tmp_path_factory.mktemp("predictions") / "predictions.sqlite"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(settings.ENV_PREDICTION_STORE, str(path))
        yield path


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def registered(store: str) -> RegisteredModel:
    """Breast cancer, binary 0/1, all numeric: today's reference model."""
    return register_plinth_model(store, "plinth-test-classifier", experiment="serving-tests")


@pytest.fixture(scope="session")
def wine(store: str) -> RegisteredModel:
    return register_plinth_model(store, "plinth-test-wine", WINE, "serving-tests")


@pytest.fixture(scope="session")
def diabetes(store: str) -> RegisteredModel:
    return register_plinth_model(store, "plinth-test-diabetes", DIABETES, "serving-tests")


@pytest.fixture(scope="session")
def churn(store: str) -> RegisteredModel:
    """Mixed types with missing values: floats, text, a boolean object column, an integer category."""
    return register_plinth_model(store, "plinth-test-churn", CHURN, "serving-tests")


def forget_bentoml_metrics() -> None:
    """Unregister BentoML's own collectors (`bentoml_*`) from this process's default Prometheus registry.

    BentoML's traffic middleware registers them once per app, when the app first sees any scope (lifespan
    included); a second in-process app would register them again and fail with DuplicateTimeseries. The tests
    read only plinth's metrics from the registry, which the service module registers once per process; a real
    `bentoml serve` has one app per worker process and never meets this.
    """
    names = REGISTRY._collector_to_names  # no public way to list the collectors
    for collector in [c for c, owned in names.items() if any(n.startswith("bentoml_") for n in owned)]:
        REGISTRY.unregister(collector)


@contextlib.contextmanager
def asgi_client(env: dict[str, str]) -> Iterator[tuple[ModuleType, TestClient]]:
    """Yield the service module built with `env` and a client over its ASGI app (lifespan runs: the model loads).

    Several such apps may live in one test process at once (the session's and a module's own).
    """
    module = import_service(env)
    forget_bentoml_metrics()
    with TestClient(module.ModelService.to_asgi()) as client:
        yield module, client


@pytest.fixture(scope="session")
def served(registered: RegisteredModel) -> Iterator[tuple[ModuleType, TestClient]]:
    """The binary model's service module and its in-process client."""
    with asgi_client(env_for(registered)) as pair:
        yield pair


@pytest.fixture(scope="session")
def service_module(served: tuple[ModuleType, TestClient]) -> ModuleType:
    return served[0]


@pytest.fixture(scope="session")
def client(served: tuple[ModuleType, TestClient]) -> TestClient:
    return served[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def serve_command(port: int, host: str = "127.0.0.1") -> list[str]:
    return [
        *(sys.executable, "-m", "bentoml", "serve", f"{SERVICE_MODULE}:ModelService"),
        *("--host", host, "--port", str(port)),
    ]


def server_env(home: Path, env: dict[str, str], workers: int | None = 1) -> dict[str, str]:
    """A private BentoML home (its metrics directory is wiped by every server start), one worker unless told."""
    pinned = {settings.ENV_WORKERS: str(workers)} if workers else {}
    # Nothing about the model or the registry is inherited: the server gets exactly what the test says.
    inherited = (
        *(settings.ENV_WORKERS, settings.ENV_TRACKING_URI, settings.ENV_REGISTRY_URI, settings.ENV_TASK),
        *(settings.ENV_VERIFY_KEY, settings.ENV_REQUIRE_SIGNATURE),
    )
    base = {key: value for key, value in os.environ.items() if key not in inherited}
    return {**base, "BENTOML_HOME": str(home / "bentoml"), **pinned, **env}


class Server(ManagedProcess):
    """A real `bentoml serve` process on 127.0.0.1, with its own BentoML home (metrics files); started at once."""

    def __init__(
        self, env: dict[str, str], home: Path, port: int, workers: int | None = 1, host: str = "127.0.0.1"
    ) -> None:
        self.url = f"http://{host}:{port}"
        command = serve_command(port, host)
        env = server_env(home, env, workers)
        super().__init__("bentoml serve", command, home / "server.log", env, f"{self.url}/readyz")
        self.start()


@contextlib.contextmanager
def running_server(
    env: dict[str, str], home: Path, workers: int | None = 1, host: str = "127.0.0.1", port: int | None = None
) -> Iterator[Server]:
    server = Server(env, home, port or free_port(), workers, host)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def server(registered: RegisteredModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(env_for(registered), tmp_path_factory.mktemp("server")) as live:
        yield live


@pytest.fixture(scope="session")
def churn_server(churn: RegisteredModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(env_for(churn), tmp_path_factory.mktemp("churn-server")) as live:
        yield live


@pytest.fixture(scope="session")
def diabetes_server(diabetes: RegisteredModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The regression model's server (test_tasks.py, test_feedback.py): tests read its counters as differences."""
    with running_server(env_for(diabetes), tmp_path_factory.mktemp("diabetes-server")) as live:
        yield live


def serve_once(env: dict[str, str], repo_root: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m serving.model_service.serve` (what `make serve` runs) with exactly `env`, to its exit.

    For the ways it must refuse to start: each ends with one line on stderr and exit status 1.
    """
    return subprocess.run(
        [sys.executable, "-m", "serving.model_service.serve"],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def predict_spread(url: str, instances: list[dict[str, object]], rows_per_request: int = 10) -> None:
    """Send `instances` as many small /predict requests, as many callers would.

    The drift window takes a few rows of each request and scores only once it spans many requests (no single
    caller can fill it), so a shift shows only when it comes from many requests.
    """
    with httpx.Client(timeout=30) as client:
        for start in range(0, len(instances), rows_per_request):
            answer = client.post(f"{url}/predict", json={"instances": instances[start : start + rows_per_request]})
            assert answer.status_code == 200, answer.text


def scrape(url: str) -> dict[str, float]:
    """Return every sample of `url`/metrics as {'name{labels}': value}, parsed by prometheus-client.

    (Splitting lines on their last space breaks on label values with spaces in them.)
    """
    response = httpx.get(f"{url}/metrics", timeout=5)
    response.raise_for_status()
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f'{name}="{value}"' for name, value in sample.labels.items())
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
    return samples


def total(samples: dict[str, float], pattern: str) -> float:
    """Sum the samples whose 'name{labels}' matches `pattern` in full."""
    return sum(value for key, value in samples.items() if re.fullmatch(pattern, key))


def metric(samples: dict[str, float], name: str, **labels: str) -> float:
    """Return one sample's value by name and exact label set (any label order), 0 when absent."""
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    for key, value in samples.items():
        head, _, rest = key.partition("{")
        if head == name and set(filter(None, rest.rstrip("}").split(","))) == wanted:
            return value
    return 0.0


def refreshed_quality(setting: str) -> LiveQuality:
    """The live-quality exporter's collector after one read of the store `setting` (as the one exporter reads it)."""
    store = PredictionStore(setting, settings.DEFAULT_FEEDBACK_MAX_AGE_S)
    try:
        quality = LiveQuality(store, {"1h": 3600.0})
        assert quality.refresh()
    finally:
        store.close()
    return quality
