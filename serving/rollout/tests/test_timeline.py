"""The rollout timeline PNG: drawn from a real controller's history, logged beside the JSON on a real registry.

The controller runs its real loop (shadow phase, weighted steps, analysis, decision) over a scripted metrics
source and an in-memory traffic edge; the recorder writes to a SQLite MLflow store in the test's directory.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image
from prometheus_client import REGISTRY

from components.common.tracking import PROMOTED, ROLLED_BACK, artifact_root
from serving.rollout.core.controller import Controller
from serving.rollout.core.observe import Observation, TrackSample
from serving.rollout.core.record import ROLLOUT_EXPERIMENT, RolloutRecorder
from serving.rollout.core.spec import parse_spec
from serving.rollout.core.timeline import evidence_label, shadow_span, weights

MODEL = "timeline-model"
PREFIX = "plinth.rollout.test"
SPEC = {
    "steps": [50, 100],
    "interval": "10ms",
    "minRequests": 5,
    "progressDeadline": "60s",
    "shadow": {"duration": "10ms"},
    "checks": [
        {"name": "success-rate", "min": 0.9, "failureLimit": 2},
        {"name": "latency-p99", "maxSeconds": 1.0, "failureLimit": 2},
    ],
}
# Matplotlib's tab:green and tab:red, the colours of a passed and a failed check's markers.
GREEN, RED = (0x2C, 0xA0, 0x2C), (0xD6, 0x27, 0x28)


class ScriptedSource:
    """Answers each interval with the next canary error count (the last one repeats)."""

    def __init__(self, version: str, errors: list[float]) -> None:
        self.version, self.errors = version, errors

    def start(self) -> None:
        """Nothing to baseline: the script is the metrics."""

    def observe(self, window_seconds: float) -> Observation:
        """Return 20 canary requests with the scripted errors, and a healthy stable."""
        errors = self.errors.pop(0) if len(self.errors) > 1 else self.errors[0]
        canary = TrackSample(requests=20, errors=errors, p99_seconds=0.05, model_version=self.version)
        return Observation(stable=TrackSample(requests=20, errors=0, p99_seconds=0.05), canary=canary)


class MemoryEdge:
    """The traffic split as a few attributes."""

    def __init__(self) -> None:
        self.weight, self.mirror, self.ended = 0, False, ""

    def set_weight(self, weight: int) -> None:
        self.weight = weight

    def set_mirror(self, on: bool) -> None:
        self.mirror = on

    def promote(self) -> None:
        self.weight, self.ended = 0, PROMOTED

    def rollback(self) -> None:
        self.weight, self.ended = 0, ROLLED_BACK


@pytest.fixture
def client(tmp_path: Path) -> MlflowClient:
    """A SQLite registry with MODEL v1 logged from a run whose artifacts live under tmp_path."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # no process-wide default changed
    experiment = client.create_experiment("timeline", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    client.create_registered_model(MODEL)
    client.create_model_version(MODEL, f"runs:/{run.info.run_id}/model", run.info.run_id)
    return client


def roll_out(client: MlflowClient, errors: list[float]) -> RolloutRecorder:
    recorder = RolloutRecorder(client, MODEL, "1", "test")
    edge = MemoryEdge()
    Controller(parse_spec(SPEC), ScriptedSource("1", errors), edge, recorder, MODEL).run("0")
    assert edge.ended
    return recorder


def logged_png(client: MlflowClient, tmp_path: Path) -> np.ndarray:
    """Check the PNG lies beside the JSON history and is what the tags name; return its RGB pixels."""
    tags = client.get_model_version(MODEL, "1").tags
    history, timeline = tags[f"{PREFIX}.history"], tags[f"{PREFIX}.timeline"]
    assert timeline == history.removesuffix(".json") + "-timeline.png"
    run_id = history.split("/")[1]
    run = client.get_run(run_id)  # the rollout's own run, not the training run the gate's evidence is on
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == ROLLOUT_EXPERIMENT
    # Beside the SQLite store, never ./mlruns in whatever directory the controller runs in.
    assert experiment.artifact_location == artifact_root(client.tracking_uri)
    assert run.info.run_id != client.get_model_version(MODEL, "1").run_id
    assert run.data.tags["plinth.version"] == "1"
    assert run.data.tags["plinth.training_run"] == client.get_model_version(MODEL, "1").run_id
    assert run.info.status == "FINISHED"
    paths = {artifact.path for artifact in client.list_artifacts(run_id, "rollout")}
    assert {path.rsplit("/", 1)[1] for path in paths} == {history.rsplit("/", 1)[1], timeline.rsplit("/", 1)[1]}
    local = client.download_artifacts(run_id, timeline.split("/", 2)[2], str(tmp_path / "download"))
    image = Image.open(io.BytesIO(Path(local).read_bytes()))
    assert image.format == "PNG"
    pixels = np.asarray(image.convert("RGB"))
    height, width, _ = pixels.shape
    assert height >= 400
    assert width >= 1000
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # drawn, not a blank canvas
    return pixels


def has_colour(pixels: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool((pixels == colour).all(axis=-1).sum() >= 20)


def test_a_promotion_is_drawn_with_its_failed_interval_and_logged_beside_the_history(
    client: MlflowClient, tmp_path: Path
) -> None:
    # shadow passes, the first 50 % interval fails success-rate (held), then every interval passes.
    recorder = roll_out(client, [0, 10, 0])
    kinds = [event["event"] for event in recorder.history]
    assert kinds[:3] == ["started", "shadow", "analysis"]
    assert kinds[-1] == PROMOTED
    statuses = [c["status"] for e in recorder.history if e["event"] == "analysis" for c in e["checks"]]
    assert "fail" in statuses
    pixels = logged_png(client, tmp_path)
    assert has_colour(pixels, GREEN)
    assert has_colour(pixels, RED)


def test_a_rollback_is_drawn(client: MlflowClient, tmp_path: Path) -> None:
    recorder = roll_out(client, [0, 10])
    assert recorder.history[-1]["event"] == ROLLED_BACK
    assert recorder.history[-1]["reason"].startswith("success-rate failed 2 time(s)")
    assert has_colour(logged_png(client, tmp_path), RED)


def test_a_history_that_cannot_be_drawn_still_records_the_outcome(client: MlflowClient) -> None:
    recorder = RolloutRecorder(client, MODEL, "1", "test")
    recorder.begin("0")
    recorder.history[0]["at"] = "not a time"
    assert recorder.finish(ROLLED_BACK, "canary answered 500")
    tags = client.get_model_version(MODEL, "1").tags
    assert tags[f"{PREFIX}.status"] == ROLLED_BACK
    assert f"{PREFIX}.timeline" not in tags
    run_id = tags[f"{PREFIX}.history"].split("/")[1]
    saved = client.download_artifacts(run_id, tags[f"{PREFIX}.history"].split("/", 2)[2])
    assert json.loads(Path(saved).read_text())[-1]["reason"] == "canary answered 500"


def test_the_reconcile_loops_history_gives_weights_and_shadow_from_its_analysis_events() -> None:
    # The cluster loop records no weight or shadow events: every interval's analysis carries its weight.
    history: list[dict[str, Any]] = [
        {"at": "2026-11-23T10:00:00+00:00", "event": "analysis", "weight": 0, "checks": []},
        {"at": "2026-11-23T10:00:30+00:00", "event": "analysis", "weight": 0, "checks": []},
        {"at": "2026-11-23T10:01:00+00:00", "event": "analysis", "weight": 10, "checks": []},
        {"at": "2026-11-23T10:01:30+00:00", "event": "analysis", "weight": 100, "checks": []},
        {"at": "2026-11-23T10:02:00+00:00", "event": PROMOTED, "reason": "all 2 steps passed analysis"},
    ]
    times = [0.0, 30.0, 60.0, 90.0, 120.0]
    assert weights(history, times) == (times, [0.0, 0.0, 10.0, 100.0, 0.0])
    assert shadow_span(history, times) == (0.0, 60.0)


def test_a_proven_regression_leaves_its_evidence_in_the_history_the_plot_and_the_metrics(
    client: MlflowClient, tmp_path: Path
) -> None:
    """Half the canary's answers fail: the guard (min 0.3) passes, the comparison with the stable proves it."""
    checks = [{"name": "success-rate", "min": 0.3, "failureLimit": 5, "alpha": 0.05, "minEffect": 0.2}]
    recorder = RolloutRecorder(client, MODEL, "1", "test")
    Controller(parse_spec({**SPEC, "checks": checks}), ScriptedSource("1", [10]), MemoryEdge(), recorder, MODEL).run()
    outcome = recorder.history[-1]
    assert outcome["event"] == ROLLED_BACK
    assert outcome["reason"].startswith("success-rate: canary worse than stable on the non-5xx share: upper bound")
    evidence = outcome["evidence"]["success-rate"]
    assert evidence["decision"] == "regression"
    assert evidence["interval"][1] < 0
    assert evidence["n_b"] == evidence["n_a"] == 20  # rolled back in the shadow phase's first interval
    analysed = [c for e in recorder.history if e["event"] == "analysis" for c in e["checks"]]
    assert analysed[-1]["evidence"] == evidence
    assert evidence_label(evidence).startswith("regression (upper bound")
    assert "n 20 canary / 20 stable" in evidence_label(evidence)
    assert has_colour(logged_png(client, tmp_path), RED)
    gauge = "plinth_rollout_check_evidence"
    assert REGISTRY.get_sample_value(gauge, {"check": "success-rate", "quantity": "regression"}) == 1.0
    assert REGISTRY.get_sample_value(gauge, {"check": "success-rate", "quantity": "upper"}) == evidence["interval"][1]
    assert REGISTRY.get_sample_value(gauge, {"check": "success-rate", "quantity": "canary_samples"}) == 20
