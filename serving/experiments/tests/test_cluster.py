"""`python -m serving.experiments run`: the cluster's loop on a real store, registry and (absent) Prometheus."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from components.common.tracking import connect
from serving.experiments.__main__ import main
from serving.experiments.cluster import DECIDED, recorded_decision
from serving.experiments.guards import Guards
from serving.experiments.report import EXPERIMENT, SINCE_TAG
from serving.experiments.run import Interrupted, run_experiment
from serving.experiments.spec import load_experiment
from serving.model_service.feedback_route import Judge
from serving.model_service.predictor import ServedTask
from serving.model_service.recorder import Recorder
from serving.model_service.settings import ENV_PREDICTION_STORE
from serving.model_service.store import PredictionStore
from serving.rollout.edges.query_prometheus import PrometheusSource

BINARY = ServedTask("binary", (0, 1), True)
GONE = "http://127.0.0.1:9"  # nothing listens: no metrics is never a pass
DECIDED_SERIES = "plinth_experiment_decided"


def labelled(store: PredictionStore, version: str, right: int, wrong: int, model: str = "m") -> None:
    """Store right + wrong predictions of `version` and post each one's label (`right` of them correct)."""
    recorder = Recorder(store, model, version, BINARY)
    answers: list[dict[str, Any]] = [{"label": 1, "probabilities": {"0": 0.1, "1": 0.9}} for _ in range(right + wrong)]
    recorder.stamp(answers)
    assert recorder.flush()
    judge = Judge(store, model, version, BINARY, 86_400.0)
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


def sigterm_when(ready: Callable[[], bool], timeout: float = 60.0) -> threading.Thread:
    """Send this process SIGTERM once `ready()` holds (a readiness poll), as the kubelet stops a pod."""

    def poll() -> None:
        deadline = time.monotonic() + timeout
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return thread


def test_the_deployments_loop_records_once_and_a_restarted_pod_finds_the_decision(
    tmp_path: Path, setting: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    store = PredictionStore(setting["store"], 86_400.0)
    began = time.time()
    labelled(store, "1", right=60, wrong=40)
    labelled(store, "2", right=95, wrong=5)
    client = connect(setting["uri"])
    pod = [*argv(tmp_path, setting), "--since", str(began), "--keep-running", "--metrics-port", "0"]
    previous = signal.getsignal(signal.SIGTERM)
    try:
        # After its decision the pod waits for SIGTERM (an exited container would be restarted), then exits 0.
        DECIDED.labels("cluster-ab").set(0)
        sigterm_when(lambda: REGISTRY.get_sample_value(DECIDED_SERIES, {"experiment": "cluster-ab"}) == 1)
        assert main(pod) == 0
        assert "DECISION: winner (b)" in capsys.readouterr().out
        # The restarted pod finds that decision by name and start, waits, and records no second one.
        first = signal.getsignal(signal.SIGTERM)
        sigterm_when(lambda: signal.getsignal(signal.SIGTERM) is not first)
        assert main(pod) == 0
        assert "experiment cluster-ab: already decided: winner (b), run " in capsys.readouterr().out
    finally:
        signal.signal(signal.SIGTERM, previous)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags[SINCE_TAG] == str(int(began * 1000))
    # Another start is another experiment: nothing recorded for it.
    assert recorded_decision(client, "cluster-ab", int(began * 1000) + 1) is None


def test_a_stopped_pod_records_nothing_and_refusals_name_the_flag(
    tmp_path: Path, setting: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_experiment(write_spec(tmp_path))
    guards = Guards(spec, {"b": PrometheusSource(GONE)}, {"a": "1", "b": "2"})
    stop = threading.Event()
    stop.set()  # SIGTERM before the first look: a rollout replacing the pod
    store = PredictionStore(setting["store"], 86_400.0)
    with pytest.raises(Interrupted, match="undecided"):
        run_experiment(spec, store, "m", {"a": "1", "b": "2"}, guards, stop, print, decide_on_stop=False)
    assert connect(setting["uri"]).get_experiment_by_name(EXPERIMENT) is None
    # The URIs that carry credentials come from the chart's environment; without them, one line names the flag.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(ENV_PREDICTION_STORE, raising=False)
    bare = ["run", "--spec", write_spec(tmp_path), "--model-name", "m", "--prometheus", GONE]
    assert main(bare) == 2
    assert capsys.readouterr().out == "plinth experiment: --tracking-uri: required (or $MLFLOW_TRACKING_URI)\n"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", setting["uri"])
    assert main(bare) == 2
    assert capsys.readouterr().out == f"plinth experiment: --store: required (or ${ENV_PREDICTION_STORE})\n"
    monkeypatch.setenv(ENV_PREDICTION_STORE, setting["store"])
    assert main([*bare, "--keep-running"]) == 2
    assert capsys.readouterr().out.startswith("plinth experiment: --since: required with --keep-running")
