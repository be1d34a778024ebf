"""No usage telemetry leaves a machine or a cluster: every image and every make verb turns it off."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
BENTOML_OFF = {"BENTOML_DO_NOT_TRACK": "true"}
IMAGES = {
    "serving/Dockerfile": {**OFF, **BENTOML_OFF},
    "components/Dockerfile": {**OFF, **BENTOML_OFF},
    "manifests/platform/mlflow/Dockerfile": OFF,
}


def image_env(dockerfile: Path) -> dict[str, str]:
    """Return the variables the Dockerfile's ENV instructions set (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    pairs = [line.split(None, 1)[1] for line in text.splitlines() if line.startswith("ENV ")]
    return dict(match for pair in pairs for match in re.findall(r"(\w+)=(\S+)", pair))


@pytest.mark.parametrize(("path", "wanted"), IMAGES.items())
def test_every_image_turns_telemetry_off(path, wanted):
    env = image_env(ROOT / path)
    assert {key: env.get(key) for key in wanted} == wanted


def test_every_make_verb_runs_with_telemetry_off():
    shown = subprocess.run(
        ["make", "-s", "--no-print-directory", "-f", "Makefile", "-f", "-", "show"],
        input="show:\n\t@echo $$MLFLOW_DISABLE_TELEMETRY $$BENTOML_DO_NOT_TRACK $$DO_NOT_TRACK\n",
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert shown.stdout.split() == ["true", "true", "true"]
