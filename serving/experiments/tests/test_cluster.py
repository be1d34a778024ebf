"""`python -m serving.experiments run`: the cluster's loop on a real store, registry and (absent) Prometheus."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.common.tracking import connect
from serving.experiments.__main__ import main
from serving.experiments.report import EXPERIMENT
from serving.model_service.feedback_route import Judge
from serving.model_service.predictor import ServedTask
from serving.model_service.recorder import Recorder
from serving.model_service.store import PredictionStore

BINARY = ServedTask("binary", (0, 1), True)
GONE = "http://127.0.0.1:9"  # nothing listens: no metrics is never a pass


def labelled(store: PredictionStore, version: str, right: int, wrong: int) -> None:
    recorder = Recorder(store, "m", version, BINARY)
    answers: list[dict[str, Any]] = [{"label": 1, "probabilities": {"0": 0.1, "1": 0.9}} for _ in range(right + wrong)]
    recorder.stamp(answers)
    assert recorder.flush()
    judge = Judge(store, "m", version, BINARY, 86_400.0)
    for i, answer in enumerate(answers):
        body = {"request_id": answer["request_id"], "label": 1 if i < right else 0}
        assert judge.decide(json.dumps(body).encode())[0] == 200


@pytest.fixture
def setting(tmp_path: Path) -> dict[str, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = connect(uri)
    client.create_registered_model("m")
    for _ in range(2):
        client.create_model_version("m", source=str(tmp_path), run_id=None)
    client.set_registered_model_alias("m", "challenger", "2")
    return {"uri": uri, "store": str(tmp_path / "predictions.sqlite")}


def write_spec(tmp_path: Path, **change: Any) -> str:
    spec = {
        "name": "cluster-ab",
        "variants": [{"name": "a", "version": "1", "weight": 50}, {"name": "b", "alias": "challenger", "weight": 50}],
        "outcome": {"metric": "label"},
        "minEffect": 0.1,
        "maxDuration": "30s",
        "interval": "10ms",
        **change,
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def argv(tmp_path: Path, setting: dict[str, str], **change: Any) -> list[str]:
    return [
        "run", "--spec", write_spec(tmp_path, **change), "--model-name", "m", "--tracking-uri", setting["uri"],
        "--store", setting["store"], "--prometheus", GONE,
    ]  # fmt: skip


def test_outcomes_in_the_shared_store_decide_and_the_registry_records_it(
    tmp_path: Path, setting: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    store = PredictionStore(setting["store"], 86_400.0)
    labelled(store, "1", right=0, wrong=50)  # before the experiment began: not counted
    began = time.time()
    labelled(store, "1", right=60, wrong=40)
    labelled(store, "2", right=95, wrong=5)
    # The loop (re)started after the experiment began: it counts from the experiment's start.
    assert main([*argv(tmp_path, setting), "--since", str(began)]) == 0
    output = capsys.readouterr().out
    assert "experiment cluster-ab: a=v1, b=v2" in output
    assert "DECISION: winner (b)" in output
    client = connect(setting["uri"])
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["plinth.experiment.winner"] == "b"
    assert run.data.metrics["b.samples"] == 100


def test_guards_without_metrics_stop_the_experiment(
    tmp_path: Path, setting: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    guards = [{"name": "success-rate", "min": 0.99, "failureLimit": 2}]
    assert main(argv(tmp_path, setting, guards=guards)) == 0
    output = capsys.readouterr().out
    assert "DECISION: stopped by guard (a)" in output
    assert "variant b stopped by guard success-rate" in output


def test_three_variants_or_a_missing_version_are_refused(
    tmp_path: Path, setting: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    three = [{"name": n, "version": "1", "weight": w} for n, w in (("a", 40), ("b", 30), ("c", 30))]
    assert main(argv(tmp_path, setting, variants=three)) == 2
    assert "variants: a cluster runs two (its stable and canary tracks), got 3" in capsys.readouterr().out
    gone = [{"name": "a", "version": "1", "weight": 50}, {"name": "b", "version": "7", "weight": 50}]
    assert main(argv(tmp_path, setting, variants=gone)) == 2
    assert "plinth experiment: variant b:" in capsys.readouterr().out
