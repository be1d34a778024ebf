"""A SQLite registry with this machine's key pair, and fresh pipeline candidates in it (one per call)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient

from components.common import signing, tracking
from components.conftest import make_table
from components.register.tests.pipeline_run import Trained, trained
from components.train_sklearn.core import as_saved, build_model


@dataclass(frozen=True)
class Registry:
    """A SQLite store, its experiment, its key pair, and a maker of gate-approved candidates."""

    uri: str
    client: MlflowClient
    experiment: str
    key: Path
    public: Path
    candidate: Callable[..., Trained]


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    uri = f"sqlite:///{tmp_path_factory.mktemp('signing') / 'mlflow.db'}"
    client = tracking.connect(uri)
    experiment = tracking.ensure_experiment(client, "signing", uri)
    table = make_table("binary")
    model = as_saved(build_model(table.profile, seed=0).fit(table.x_train, table.y_train))
    key, _ = signing.signing_key(uri, env={})

    def candidate(won: bool = True) -> Trained:
        tracking.connect(uri)
        return trained(client, experiment, model, table.x_train, table.profile, won=won)

    return Registry(uri, client, experiment, key, key.with_name(signing.PUBLIC_KEY_FILE), candidate)
