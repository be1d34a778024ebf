"""Fixtures of the shared-store scenarios: the session's real PostgreSQL and a registered binary model."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.bench.demo_model import RegisteredModel, register_plinth_model
from tests.engines import postgres  # noqa: F401 (the session's real PostgreSQL)


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> RegisteredModel:
    """Breast cancer, binary 0/1, in a registry of its own."""
    registry: Path = tmp_path_factory.mktemp("registry")
    return register_plinth_model(
        f"sqlite:///{registry / 'mlflow.db'}", "plinth-feedback-scenario", experiment="feedback"
    )
