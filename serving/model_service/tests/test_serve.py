"""What `make serve` runs (`python -m serving.model_service.serve`), typed as a user types it.

From the repository root, in a scrubbed environment (PATH, HOME, PLINTH_HOME, PORT, PLINTH_MODEL_NAME and
nothing else: no MLFLOW_TRACKING_URI), against a fresh PLINTH_HOME holding: a plinth champion, a bare
RandomForestClassifier logged with plain `mlflow.sklearn.log_model`, and a `mlflow.pyfunc.PythonModel`.
Each must print a curl line that answers 200 as printed, and leave no MLflow files in the working directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from components.common.loaders import ENV_ALLOWED_FOREIGN_MODELS, ENV_ALLOWED_LOADERS
from components.common.state import local_tracking_uri
from serving.bench.demo_model import (
    RegisteredModel,
    register_plain_sklearn,
    register_plinth_model,
    register_python_model,
)
from serving.embedded.processes import free_port

from .conftest import CHURN, metric, scrape, serve_once

pytestmark = pytest.mark.integration
READY_TIMEOUT_S = 180
# A PythonModel's loader runs the model's own code: these tests serve one they trust, so they allow it.
ALLOW_PYTHON_MODELS = {ENV_ALLOWED_LOADERS: "mlflow.pyfunc.model"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plinth-home")


@pytest.fixture(scope="module")
def plinth_champion(home: Path) -> RegisteredModel:
    return register_plinth_model(local_tracking_uri(home), "plinth-classifier")


@pytest.fixture(scope="module")
def forest(home: Path, plinth_champion: RegisteredModel) -> RegisteredModel:
    features = plinth_champion.features
    labels = plinth_champion.model.predict(features)
    model = RandomForestClassifier(n_estimators=30, random_state=0).fit(features, labels)
    return register_plain_sklearn(local_tracking_uri(home), "notebook-forest", model, features, plinth_champion.task)


@pytest.fixture(scope="module")
def rule(home: Path) -> RegisteredModel:
    churn = register_plinth_model(local_tracking_uri(home), "churn-reference", CHURN)
    return register_python_model(local_tracking_uri(home), "support-rule", churn.features, churn.task)


class Typed:
    """A `python -m serving.model_service.serve` process and what it printed."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, port: int) -> None:
        self.process = process
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def curl(self) -> str:
        """Return the curl command the service printed for its model."""
        found = re.search(r"^\s*try it\s+(curl .*)$", self.output(), re.MULTILINE)
        assert found, self.output()
        return found.group(1)


@contextlib.contextmanager
def make_serve(home: Path, model: RegisteredModel, cwd: Path, **extra: str) -> Iterator[Typed]:
    """Start what `make serve` runs in a scrubbed environment (plus `extra`); poll /readyz; stop it after."""
    port = free_port()
    user_home = home / "user"
    user_home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(user_home),
        "PLINTH_HOME": str(home),
        "PORT": str(port),
        "PLINTH_MODEL_NAME": model.name,
        **extra,
    }
    log = home / f"serve-{model.name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving.model_service.serve"],
            cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    typed = Typed(process, log, port)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert process.poll() is None, typed.output()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{typed.url}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            pytest.fail(f"not ready after {READY_TIMEOUT_S}s:\n{typed.output()[-3000:]}")
        yield typed
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def run_curl(command: str) -> dict[str, object]:
    """Run a printed curl line as a shell would and return the JSON it answered (HTTP status checked)."""
    result = subprocess.run(
        ["bash", "-c", f"{command} -w '\\n%{{http_code}}'"], capture_output=True, text=True, timeout=60, check=False
    )
    body, _, status = result.stdout.rpartition("\n")
    assert status == "200", result.stdout + result.stderr
    return dict(json.loads(body))


def no_mlflow_files(cwd: Path) -> None:
    assert not (cwd / "mlflow.db").exists()
    assert not (cwd / "mlruns").exists()


def test_plinth_champion_prints_urls_and_a_working_curl(
    home: Path, plinth_champion: RegisteredModel, repo_root: Path
) -> None:
    with make_serve(home, plinth_champion, repo_root) as served:
        answer = run_curl(served.curl())
        output = served.output()
    for url in (f"{served.url}/predict", f"{served.url}/docs.json", f"{served.url}/metrics"):
        assert url in output
    assert answer["model_name"] == "plinth-classifier"
    assert set(answer["predictions"][0]) == {  # type: ignore[index]
        *("label", "probability", "probabilities", "model_name", "model_version", "request_id"),
    }
    # serve.py gives BentoML a home of its own under PLINTH_HOME, not the user's ~/bentoml.
    assert (home / "bentoml").is_dir()
    assert not (home / "user" / "bentoml").exists()
    no_mlflow_files(repo_root)


def test_bare_sklearn_model_is_served_through_pyfunc(home: Path, forest: RegisteredModel, repo_root: Path) -> None:
    with make_serve(home, forest, repo_root) as served:
        answer = run_curl(served.curl())
        rows = forest.instances(0, 30)
        response = httpx.post(f"{served.url}/predict", json={"instances": rows}, timeout=30)
        samples = scrape(served.url)
        output = served.output()
    assert answer["model_name"] == "notebook-forest"
    assert response.status_code == 200, response.text
    got = [p["probability"] for p in response.json()["predictions"]]
    np.testing.assert_allclose(got, forest.model.predict_proba(forest.features.iloc[:30])[:, 1], rtol=1e-9)
    info = {"model_name": forest.name, "model_version": forest.version, "task": "binary", "drift": "off"}
    assert metric(samples, "plinth_model_info", **info) == 1
    assert "has no reference profile: input drift is not scored" in output
    no_mlflow_files(repo_root)


def test_python_model_answers_labels_only(home: Path, rule: RegisteredModel, repo_root: Path) -> None:
    with make_serve(home, rule, repo_root, **ALLOW_PYTHON_MODELS) as served:
        answer = run_curl(served.curl())
        rows = rule.instances(0, 40)
        response = httpx.post(f"{served.url}/predict", json={"instances": rows}, timeout=30)
        samples = scrape(served.url)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [set(p) for p in predictions] == [{"label", "model_name", "model_version", "request_id"}] * len(rows)
    expected = rule.model.predict(None, rule.features.iloc[:40])
    assert [p["label"] for p in predictions] == expected.tolist()
    yes = int(np.count_nonzero(expected == "yes"))
    counted = metric(samples, "plinth_predicted_class_total", **{"class": "yes"})
    assert counted == yes + (answer["predictions"][0]["label"] == "yes")  # type: ignore[index]
    info = {"model_name": rule.name, "model_version": rule.version, "task": "binary", "drift": "off"}
    assert metric(samples, "plinth_model_info", **info) == 1
    no_mlflow_files(repo_root)


def test_a_python_model_is_refused_unless_its_loader_is_allowed(
    home: Path, rule: RegisteredModel, repo_root: Path
) -> None:
    """A PythonModel's loader (`mlflow.pyfunc.model`) runs the model's own code: refused by default, in one line."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PLINTH_HOME": str(home), "PLINTH_MODEL_NAME": rule.name}
    result = serve_once(env, repo_root)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"plinth: {rule.name} v{rule.version} refused: its loader module mlflow.pyfunc.model is not plinth's and "
        f"runs the model's own code when loaded; list it in {ENV_ALLOWED_LOADERS} (chart value signing.allowedLoaders) "
        f"or the model in {ENV_ALLOWED_FOREIGN_MODELS} (signing.allowedForeignModels) only for a model you trust"
    )


def test_unknown_model_fails_before_serving_with_one_line(home: Path, repo_root: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PLINTH_HOME": str(home), "PLINTH_MODEL_NAME": "nope"}
    result = serve_once(env, repo_root)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("plinth: cannot load models:/nope@champion")
    no_mlflow_files(repo_root)


def test_unsupported_column_type_refuses_to_start_naming_the_column(
    home: Path, rule: RegisteredModel, repo_root: Path
) -> None:
    seen = rule.features.assign(seen_at=pd.Timestamp("2026-01-01"))
    dated = register_python_model(local_tracking_uri(home), "dated-rule", seen, rule.task)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PLINTH_HOME": str(home), "PLINTH_MODEL_NAME": dated.name}
    env.update(ALLOW_PYTHON_MODELS)
    result = serve_once(env, repo_root)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "input column 'seen_at' has type datetime" in last, result.stderr[-2000:]
