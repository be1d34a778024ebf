"""`make rollout` and `python -m serving.embedded.rollout`, run as a user types them.

A scrubbed environment (PATH without the project's .venv, HOME, PLINTH_HOME and nothing else: no
MLFLOW_TRACKING_URI, no PLINTH_MODEL_*), from the repository root, against a fresh PLINTH_HOME whose
embedded registry holds a champion and a challenger. Only the router port is given, because 8080 may be
taken on a shared machine.
"""

import subprocess
from pathlib import Path

import pytest

from components.common.state import local_tracking_uri
from components.common.tracking import CHALLENGER, CHAMPION, connect
from serving.embedded.processes import free_port
from serving.embedded.train_drill import register_drill_model, register_plain_model
from tests.docs.as_typed import bare_path
from tests.rollout.conftest import needs_prometheus

pytestmark = [pytest.mark.integration, needs_prometheus]
ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
TIMEOUT_S = 420
# What a command must never leave in the working directory (issue 8: a store opened at the wrong URI).
STRAYS = ("mlflow.db", "mlruns")


def typed(argv: list[str], tmp_path: Path, plinth_home: Path) -> subprocess.CompletedProcess[str]:
    """Run `argv` from the repository root in a user's bare shell; stdout and stderr interleaved."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": bare_path(), "HOME": str(home), "PLINTH_HOME": str(plinth_home)}
    strays = {name: (ROOT / name).exists() for name in STRAYS}
    done = subprocess.run(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert {name: (ROOT / name).exists() for name in STRAYS} == strays, done.stdout[-3000:]
    return done


def test_make_rollout_promotes_the_challenger(tmp_path):
    plinth_home = tmp_path / "plinth"
    uri = local_tracking_uri(plinth_home)
    register_drill_model(uri, "plinth-classifier", seed=21, train_fraction=0.3, alias=CHAMPION)
    challenger = register_drill_model(uri, "plinth-classifier", seed=21, alias=CHALLENGER)
    done = typed(["make", "rollout", f"ROLLOUT_ARGS=--router-port {free_port()}"], tmp_path, plinth_home)
    output = done.stdout
    assert done.returncode == 0, output[-3000:]
    assert "traffic: 60 requests/s, rows of sklearn:breast_cancer, the data v1 was trained on" in output
    assert f"PROMOTED: champion -> v{challenger}" in output
    assert str(connect(uri).get_model_version_by_alias("plinth-classifier", CHAMPION).version) == challenger
    assert (plinth_home / "rollout" / "logs").is_dir()


def test_a_model_without_plinth_metadata_is_rolled_out_to_a_decision(tmp_path):
    """Two versions a data scientist logged with plain `mlflow.sklearn.log_model`: no profile, no task tag."""
    plinth_home = tmp_path / "plinth"
    uri = local_tracking_uri(plinth_home)
    register_plain_model(uri, "notebook-classifier", seed=3, learner="forest", alias=CHAMPION)
    register_plain_model(uri, "notebook-classifier", seed=3, learner="logistic", alias=CHALLENGER)
    argv = [
        str(PYTHON),
        "-m",
        "serving.embedded.rollout",
        "--spec",
        "serving/rollout/analysis-fast.yaml",
        "--traffic",
        "60",
        "--model-name",
        "notebook-classifier",
        "--router-port",
        str(free_port()),
    ]
    done = typed(argv, tmp_path, plinth_home)
    output = done.stdout
    assert done.returncode in (0, 3), output[-3000:]
    assert "Traceback" not in output
    assert "traffic: 60 requests/s, rows drawn from v1's input example (5 rows)" in output
    assert ("PROMOTED: champion -> v2" in output) != ("ROLLED BACK" in output), output[-3000:]
    # No reference profile: input drift does not apply, and is said so, instead of failing every interval.
    # (An interval with fewer than minRequests canary requests fails every check, drift included: that rule
    # is the traffic floor, not the missing gauge.)
    assert "input-drift=not_applicable" in output
    short_of_traffic = [line for line in output.splitlines() if "input-drift=no_data" in line]
    assert all("< minRequests" in line for line in short_of_traffic), short_of_traffic
    assert "input-drift failed" not in output
