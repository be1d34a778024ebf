"""Unit tier: the prediction store, request ids, the batched writer and the feedback judge, on real engines.

Every store test runs on an SQLite file and on a real PostgreSQL database (`tests/engines.py`). Time is the
store's injected clock, so a label can come days after its prediction without waiting for it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from serving.model_service import settings
from serving.model_service import store as store_module
from serving.model_service.feedback import new_id, parse_id
from serving.model_service.feedback_route import Judge, Refusal, read_body
from serving.model_service.live_quality import LiveQuality
from serving.model_service.predictor import ServedTask
from serving.model_service.recorder import Recorder
from serving.model_service.store import PredictionStore, store_url
from tests.engines import PostgresServer, postgres  # noqa: F401 (the session's real PostgreSQL)

BINARY = ServedTask("binary", (0, 1), True)
REGRESSION = ServedTask("regression")
DAY_S = 86_400.0
T0 = 1_800_000_000.0


class Clock:
    """A settable clock (seconds), shared by the stores of one test's "replicas"."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def store_setting(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "predictions.sqlite")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"store_{request.node.name.split('[')[0][-40:]}_{id(tmp_path) % 10**6}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def replicas(store_setting: str, clock: Clock) -> Iterator[list[PredictionStore]]:
    """Two handles on one store: two replicas (or a replica and the exporter) that share nothing else."""
    stores = [PredictionStore(store_setting, 30 * DAY_S, clock) for _ in range(2)]
    yield stores
    for store in stores:
        store.close()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def predict(recorder: Recorder, answers: list[dict[str, Any]]) -> list[str]:
    recorder.stamp(answers)
    assert recorder.flush()
    return [answer["request_id"] for answer in answers]


def label(judge: Judge, request_id: str, **truth: Any) -> tuple[int, dict[str, Any]]:
    return judge.decide(json.dumps({"request_id": request_id, **truth}).encode())


def test_request_ids_are_unique_sortable_and_old_ones_still_parse() -> None:
    first, second = new_id("7", 1_000), new_id("7", 2_000)
    assert first != new_id("7", 1_000)
    assert parse_id(first) == ("7", 1_000)
    assert first < second  # a UUIDv7's first 48 bits are its issue time
    old = f"3.0a000001.{first.split('.')[1]}"  # <version>.<replica>.<uuid7>, issued before the shared store
    assert parse_id(old) == ("3", 1_000)
    assert parse_id("no-such-id") is None


def test_store_setting_is_a_path_or_a_postgresql_url(tmp_path: Path) -> None:
    assert store_url(str(tmp_path / "p.sqlite")) == f"sqlite:///{tmp_path / 'p.sqlite'}"
    assert store_url("postgresql://u:p@db:5432/plinth") == "postgresql+psycopg://u:p@db:5432/plinth"
    env = {settings.ENV_PREDICTION_STORE: "mysql://x/y"}
    with pytest.raises(settings.SettingsError, match="PLINTH_PREDICTION_STORE"):
        settings.Settings.from_env(env)
    read = settings.Settings.from_env({settings.ENV_FEEDBACK_MAX_AGE: "3d"})
    assert read.feedback_max_age_s == 3 * DAY_S
    assert settings.Settings.from_env({}).feedback_max_age_s == 30 * DAY_S
    assert settings.Settings.from_env({}).prediction_store.endswith("predictions.sqlite")


def test_replicas_racing_to_create_the_schema_both_start(
    replicas: list[PredictionStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas start together: one checks for the tables, the other creates them, the first's CREATE fails.

    The database's own error for a table that is already there (SQLite's and PostgreSQL's differ) must read as the
    race it is, not as a store that is down: the replica checks again and serves.
    """
    first, second = replicas
    create_all = store_module.metadata.create_all
    lost: list[bool] = []

    def check_then_lose_the_race(engine: Any, checkfirst: bool = True) -> None:
        if lost:
            create_all(engine, checkfirst=checkfirst)
            return
        lost.append(True)
        first.register("m", "1", BINARY)  # the other replica creates the schema after this one found it missing
        create_all(engine, checkfirst=False)  # so this one's CREATE meets the other's tables

    monkeypatch.setattr(store_module.metadata, "create_all", check_then_lose_the_race)
    second.register("m", "2", REGRESSION)
    assert lost == [True]
    assert second.versions() == {("m", "1"): BINARY, ("m", "2"): REGRESSION}


def test_a_label_joins_on_another_replica_three_days_later(replicas: list[PredictionStore], clock: Clock) -> None:
    writer = Recorder(replicas[0], "m", "4", BINARY)
    ids = predict(
        writer,
        [{"label": 1, "probabilities": {"0": 0.2, "1": 0.8}}, {"label": 0, "probabilities": {"0": 0.9, "1": 0.1}}],
    )
    clock.now += 3 * DAY_S  # the replica that answered is long gone; this one never saw the predictions
    judge = Judge(replicas[1], "m", "5", BINARY, 30 * DAY_S)
    assert label(judge, ids[0], label=1) == (200, {"request_id": ids[0], "result": "accepted", "model_version": "4"})
    assert label(judge, ids[1], label=1)[0] == 200
    status, answer = label(judge, ids[0], label=0)
    assert (status, answer["error"]) == (409, "duplicate")
    quality = LiveQuality(replicas[1], {"1h": 3600.0, "7d": 7 * DAY_S})
    assert quality.refresh()
    totals = quality.totals[("m", "4")]
    assert (totals.counts["correct"], totals.sums["correct"]) == (2, 1.0)
    assert totals.sums["log_loss"] == pytest.approx(-math.log(0.8) - math.log(0.1))
    windows = {(by, name): w for by, name, w in quality.windowed}
    assert windows[("label_time", "1h")].rows == 2  # labelled just now
    assert ("prediction_time", "1h") not in windows  # predicted 3 days ago
    assert windows[("prediction_time", "7d")].correct == (1.0, 2)
    assert quality.refresh()
    assert quality.totals[("m", "4")].counts["correct"] == 2


def test_late_unknown_and_purged_predictions(replicas: list[PredictionStore], clock: Clock) -> None:
    store = replicas[0]
    store.max_age_ms = int(DAY_S * 1000)
    writer = Recorder(store, "m", "1", REGRESSION)
    [old, kept] = predict(writer, [{"prediction": 2.0}, {"prediction": 3.0}])
    judge = Judge(replicas[1], "m", "1", REGRESSION, DAY_S)
    assert label(judge, kept, value=2.5)[0] == 200
    clock.now += DAY_S + 1
    status, answer = label(judge, old, value=1.0)
    assert (status, answer["error"]) == (410, "late")
    assert store.purge() == 2  # both predictions, and the label of one
    assert store.find(old) is None
    assert store.windows(0, "label_time") == []
    status, answer = label(judge, old, value=1.0)
    assert (status, answer["error"]) == (410, "late")  # purged: its id's issue time says it was too old
    never = new_id("1", store.now_ms() - 60_000)
    status, answer = label(judge, never, value=1.0)
    assert (status, answer["error"], answer["detail"].split(":")[0]) == (404, "unknown", "request_id")
    assert label(judge, kept, label=1)[1]["error"] == "malformed"


def test_a_label_for_a_prediction_still_queued_in_this_worker_joins(replicas: list[PredictionStore]) -> None:
    writer = Recorder(replicas[0], "m", "2", BINARY)
    judge = Judge(replicas[0], "m", "2", BINARY, DAY_S)
    judge.recorder = writer
    answers: list[dict[str, Any]] = [{"label": 0, "probabilities": {"0": 0.6, "1": 0.4}}]
    writer.stamp(answers)  # not flushed: the writer thread is not even started
    assert writer.pending() == 1
    assert label(judge, answers[0]["request_id"], label=0)[0] == 200
    assert writer.pending() == 0


def test_the_writer_thread_flushes_in_batches(replicas: list[PredictionStore]) -> None:
    writer = Recorder(replicas[0], "m", "9", REGRESSION)
    written = sample("plinth_prediction_store_written_total", model_name="m", model_version="9")
    writer.start()
    try:
        answers: list[dict[str, Any]] = [{"prediction": float(i)} for i in range(30)]
        for answer in answers:
            writer.stamp([answer])
        writer.close()  # joins the thread after its last flush
    finally:
        writer.close()
    assert sample("plinth_prediction_store_written_total", model_name="m", model_version="9") - written == 30
    assert all(replicas[1].find(answer["request_id"]) is not None for answer in answers)


def test_read_body_refuses_what_is_not_a_label() -> None:
    with pytest.raises(Refusal, match="request_id"):
        read_body(b'{"label": 1}')
    with pytest.raises(Refusal, match="give exactly one"):
        read_body(b'{"request_id": "x", "label": 1, "value": 2}')
