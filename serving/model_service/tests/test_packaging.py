"""`bentoml build` works from bentofile.yaml and packs the service with the code it imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from serving.bench.demo_model import RegisteredModel

from .conftest import env_for


@pytest.mark.integration
def test_bentoml_build_packs_the_service(registered: RegisteredModel, repo_root: Path, tmp_path: Path) -> None:
    env = {**os.environ, **env_for(registered), "BENTOML_HOME": str(tmp_path / "bentoml")}
    command = [sys.executable, "-m", "bentoml", "build", "-f", "serving/model_service/bentofile.yaml", "."]
    result = subprocess.run(command, cwd=repo_root, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sources = {
        path.relative_to(src).as_posix()
        for src in (tmp_path / "bentoml" / "bentos").glob("plinth-model-service/*/src")
        for path in src.rglob("*.py")
    }
    assert {"serving/model_service/service.py", "components/common/modeling.py"} <= sources
    assert not any("/tests/" in path for path in sources)
