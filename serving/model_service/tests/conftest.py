"""Shared fixtures: a real MLflow registry with a champion model, and the service built against it."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from starlette.testclient import TestClient

from serving.bench.demo_model import RegisteredModel, register_logistic_regression
from serving.model_service import settings
from serving.rollout.processes import ManagedProcess, free_port

MODEL_NAME = "plinth-test-classifier"


def env_for(model: RegisteredModel, **extra: str) -> dict[str, str]:
    return {
        settings.ENV_TRACKING_URI: model.tracking_uri,
        settings.ENV_MODEL_NAME: model.name,
        settings.ENV_MODEL_ALIAS: "champion",
        **extra,
    }


@pytest.fixture(scope="session")
def registered(tmp_path_factory: pytest.TempPathFactory) -> RegisteredModel:
    home = tmp_path_factory.mktemp("mlflow")
    return register_logistic_regression(f"sqlite:///{home / 'mlflow.db'}", MODEL_NAME, "serving-tests")


@pytest.fixture(scope="session")
def service_module(registered: RegisteredModel) -> Iterator[ModuleType]:
    """Import service.py with the environment pointing at the test registry (it resolves at import)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env_for(registered).items():
            patch.setenv(key, value)
        patch.setenv(settings.ENV_WORKERS, "1")
        sys.modules.pop("serving.model_service.service", None)
        yield importlib.import_module("serving.model_service.service")
    sys.modules.pop("serving.model_service.service", None)


@pytest.fixture(scope="session")
def client(service_module: ModuleType) -> Iterator[TestClient]:
    """An in-process HTTP client over BentoML's own ASGI app (lifespan runs: the model loads)."""
    with TestClient(service_module.ModelService.to_asgi()) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def serve_command(port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "bentoml", "serve", "serving.model_service.service:ModelService"),
        *("--host", "127.0.0.1", "--port", str(port)),
    ]


def server_env(home: Path, env: dict[str, str]) -> dict[str, str]:
    """One worker, and a private BentoML home: its metrics directory is wiped by every server start."""
    return {**os.environ, "BENTOML_HOME": str(home / "bentoml"), settings.ENV_WORKERS: "1", **env}


class Server(ManagedProcess):
    """A real `bentoml serve` process on 127.0.0.1, with its own BentoML home (metrics files); started at once."""

    def __init__(self, env: dict[str, str], home: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        command = serve_command(port)
        super().__init__("bentoml serve", command, home / "server.log", server_env(home, env), f"{self.url}/readyz")
        self.start()


@contextlib.contextmanager
def running_server(env: dict[str, str], home: Path) -> Iterator[Server]:
    server = Server(env, home, free_port())
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def server(registered: RegisteredModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(env_for(registered), tmp_path_factory.mktemp("server")) as live:
        yield live
