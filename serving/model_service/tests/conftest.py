"""Shared fixtures: a real MLflow registry with a champion model, and the service built against it."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from starlette.testclient import TestClient

from components.common import modeling, profile, tracking
from components.ingest.core import load_source
from serving.model_service import settings

MODEL_NAME = "plinth-test-classifier"


@dataclass(frozen=True)
class Registered:
    tracking_uri: str
    name: str
    version: str
    model: modeling.Classifier
    features: pd.DataFrame

    def env(self, **extra: str) -> dict[str, str]:
        return {
            settings.ENV_TRACKING_URI: self.tracking_uri,
            settings.ENV_MODEL_NAME: self.name,
            settings.ENV_MODEL_ALIAS: "champion",
            **extra,
        }


def register_champion(tracking_uri: str, name: str) -> Registered:
    """Train, log and register a logistic regression exactly like the training pipeline does."""
    frame = load_source("sklearn:breast_cancer")
    features, labels = modeling.split_features(frame, "target")
    model = Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression(max_iter=1000))])
    model.fit(features, labels)
    client = tracking.connect(tracking_uri)
    experiment_id = tracking.ensure_experiment(client, "serving-tests", tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id):
        model_uri = modeling.log_model(model, features, profile.build_profile(frame, "target"), "sklearn")
    version = mlflow.register_model(model_uri, name)
    MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(name, "champion", version.version)
    return Registered(tracking_uri, name, str(version.version), model, features)


@pytest.fixture(scope="session")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Registered:
    home = tmp_path_factory.mktemp("mlflow")
    return register_champion(f"sqlite:///{home / 'mlflow.db'}", MODEL_NAME)


@pytest.fixture(scope="session")
def service_module(registered: Registered) -> Iterator[ModuleType]:
    """Import service.py with the environment pointing at the test registry (it resolves at import)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in registered.env().items():
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
