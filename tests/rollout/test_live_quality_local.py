"""Live quality on one machine: the local stack's one exporter turns labels in the shared store into metrics.

A real `python -m serving.model_service.live_quality` process (the LocalStack's LiveQualityProcess) reads a
real SQLite store that a recorder wrote predictions to and a judge labelled; the scrape source reads its page
beside the two tracks' pages, as `make rollout --metrics direct` does, and reports each version's labels.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.embedded.services import LiveQualityProcess, prediction_store_of
from serving.model_service.feedback_route import Judge
from serving.model_service.predictor import ServedTask
from serving.model_service.recorder import Recorder
from serving.model_service.store import PredictionStore
from serving.rollout.core.observe import CANARY, STABLE
from serving.rollout.edges.scrape_metrics import LIVE, ScrapeSource
from serving.rollout.tests.http_backend import wait_until
from serving.rollout.tests.live_exporter import MODEL, LiveExporter

pytestmark = pytest.mark.integration
BINARY = ServedTask("binary", (0, 1), True)
MAX_AGE_S = 30 * 86_400.0


@pytest.fixture
def logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("PLINTH_PREDICTION_STORE", raising=False)
    return tmp_path / "rollout" / "logs"


@pytest.fixture
def exporter(logs: Path) -> Iterator[LiveQualityProcess]:
    process = LiveQualityProcess(logs).start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def label(store: PredictionStore, version: str, truths: list[int], predicted: int) -> None:
    """Predict `predicted` once per truth with `version`, then label each answer with its truth."""
    recorder = Recorder(store, MODEL, version, BINARY)
    answers = [{"label": predicted, "probabilities": {"0": 1.0 - predicted, "1": float(predicted)}} for _ in truths]
    recorder.stamp(answers)
    assert recorder.flush()
    judge = Judge(store, MODEL, version, BINARY, MAX_AGE_S)
    for answer, truth in zip(answers, truths, strict=True):
        status, _ = judge.decide(json.dumps({"request_id": answer["request_id"], "label": truth}).encode())
        assert status == 200


def test_labels_in_the_shared_store_reach_the_rollout_through_the_one_exporter(
    logs: Path, exporter: LiveQualityProcess
) -> None:
    store = PredictionStore(prediction_store_of(logs), MAX_AGE_S)
    stable, canary = LiveExporter("1", "binary", []), LiveExporter("2", "binary", [])
    source = ScrapeSource({STABLE: stable.serve(), CANARY: canary.serve(), LIVE: exporter.url})
    try:
        label(store, "1", [0, 0, 0, 0], predicted=0)  # the versions are known to the exporter before the window
        label(store, "2", [1], predicted=1)
        assert wait_until(lambda: 'model_version="2"' in source.client.get(f"{exporter.url}/metrics").text, 30)
        source.start()
        label(store, "1", [0, 0, 0, 1], predicted=0)  # 3 of 4 right
        label(store, "2", [1, 0], predicted=1)  # 1 of 2 right
        seen = {}

        def counted() -> bool:
            seen["observation"] = observation = source.observe(1.0)
            return observation.stable.live.labelled == 4 and observation.canary.live.labelled == 2

        assert wait_until(counted, 30), seen
        observation = seen["observation"]
        assert observation.stable.live.accuracy == 0.75
        assert observation.canary.live.accuracy == 0.5
    finally:
        store.close()
        stable.close()
        canary.close()
