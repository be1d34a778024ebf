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


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real MLflow tracking server on 127.0.0.1 with a SQLite backend, one per module (a start costs seconds).

    A test that stops it starts it again before it ends; tests share its store, so each uses names of its own.
    """
    server = MlflowServer(tmp_path_factory.mktemp("mlflow") / "mlflow-server")
    server.root.mkdir()
    server.start()
    yield server
    server.stop()
