from collections.abc import Iterator
from pathlib import Path

import pytest
from kfp import local

from tests.servers import MlflowServer


@pytest.fixture
def kfp_local(tmp_path: Path) -> Path:
    """kfp.local with the subprocess runner in this environment; returns the pipeline root."""
    root = tmp_path / "pipeline-runs"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    return root


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    """A real MLflow tracking server on 127.0.0.1 with a SQLite backend."""
    server = MlflowServer(tmp_path / "mlflow-server")
    server.root.mkdir()
    server.start()
    yield server
    server.stop()
