"""Unit tier: the on-disk prediction log, request ids and the feedback judge, on real SQLite files."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from serving.model_service import feedback, settings
from serving.model_service.feedback import (
    PredictionLog,
    names_address,
    new_id,
    parse_id,
    replica_address,
    replica_of,
)
from serving.model_service.feedback_route import Judge, Refusal, read_body
from serving.model_service.predictor import ServedTask
from serving.model_service.recorder import Recorder

BINARY = ServedTask("binary", (0, 1), True)
REGRESSION = ServedTask("regression")


def now_ms() -> int:
    return int(time.time() * 1000)


def rows(version: str, count: int, at: int | None = None) -> list[tuple[str, int, str]]:
    stamp = now_ms() if at is None else at
    return [(new_id(version, replica_of(), stamp), stamp, json.dumps({"prediction": float(i)})) for i in range(count)]


def test_request_id_carries_version_replica_and_issue_time() -> None:
    issued = now_ms()
    request_id = new_id("12", replica_of("pod-a"), issued)
    assert parse_id(request_id) == ("12", replica_of("pod-a"), issued)
    assert replica_of("pod-a") != replica_of("pod-b")
    assert len({new_id("1", "abcdef01", issued) for _ in range(1000)}) == 1000
    assert parse_id("not-an-id") is None
    assert parse_id(request_id + "\n") is None


def test_write_and_find_across_connections(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, "m", 100, 3600)
    log.open("1", BINARY)
    batch = rows("1", 5)
    assert log.write("1", batch) == feedback.Written(evicted=0, expired=0, rows=5)
    other = PredictionLog(tmp_path, "m", 100, 3600)  # another worker process: its own connection, same file
    assert other.open("1", BINARY) == 5  # what a restarted worker reports in plinth_prediction_log_rows
    logged, oldest = other.find("1", batch[2][0])
    assert logged is not None
    assert logged.prediction == {"prediction": 2.0}
    assert not logged.labelled
    assert oldest == batch[0][1]
    assert other.task("1") == BINARY
    assert other.task("2") is None
    assert other.find("2", batch[0][0]) == (None, None)
    assert (tmp_path / "m" / "1.sqlite").is_file()
    mode = sqlite3.connect(tmp_path / "m" / "1.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_full_log_evicts_oldest_first(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, "m", 3, 3600)
    first, second = rows("1", 2), rows("1", 2)
    assert log.write("1", first).rows == 2
    assert log.write("1", second) == feedback.Written(evicted=1, expired=0, rows=3)
    assert log.find("1", first[0][0])[0] is None
    assert log.find("1", first[1][0])[0] is not None
    assert log.write("1", rows("1", 10)) == feedback.Written(evicted=10, expired=0, rows=3)


def test_large_bound_evicts_one_percent_at_once(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, "m", 200, 3600)
    log.write("1", rows("1", 200))
    assert log.write("1", rows("1", 1)) == feedback.Written(evicted=3, expired=0, rows=198)


def test_rows_older_than_the_age_bound_expire(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, "m", 100, 60)
    old = rows("1", 4, at=now_ms() - 120_000)
    log.write("1", old)
    log._expired_at = -math.inf  # the once-a-second throttle is not what this test is about
    assert log.write("1", rows("1", 1)) == feedback.Written(evicted=0, expired=4, rows=1)


def test_label_is_joined_once(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, "m", 100, 3600)
    batch = rows("1", 1)
    log.write("1", batch)
    assert log.label("1", batch[0][0], 3.5) is True
    assert log.label("1", batch[0][0], 3.5) is False
    logged = log.find("1", batch[0][0])[0]
    assert logged is not None
    assert logged.labelled


def test_unwritable_directory_is_counted_and_answers_still_get_ids(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    recorder = Recorder(PredictionLog(blocker, "m", 100, 3600), "m", "1", REGRESSION)
    answers: list[dict[str, Any]] = [{"prediction": 1.0, "model_name": "m", "model_version": "1"}]
    recorder.stamp(answers)
    recorder.stamp(answers)
    assert parse_id(answers[0]["request_id"]) is not None
    assert recorder._unreported == 1  # first failure logged at once, the second waits for the next minute


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{", "body"),
        (b"[]", "body"),
        (b'{"label": 1}', "request_id"),
        (b'{"request_id": 3, "label": 1}', "request_id"),
        (b'{"request_id": "x", "label": 1, "value": 2}', "label, value"),
        (b'{"request_id": "x"}', "label, value"),
        (b'{"request_id": "x", "label": 1, "extra": 1}', "extra"),
        (b'{"request_id": "x", "value": NaN}', "body"),
    ],
)
def test_malformed_bodies_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(Refusal) as refused:
        read_body(body)
    assert refused.value.status == 400
    assert refused.value.detail.startswith(f"{field}:")


def judged(judge: Judge, **body: object) -> tuple[int, dict[str, Any]]:
    return judge.decide(json.dumps(body).encode())


def test_judge_answers_every_outcome(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, "m", 2, 3600)
    log.open("1", BINARY)
    judge = Judge(log, "m", "1", BINARY, 3600)
    stamp = now_ms()
    batch = [(new_id("1", replica_of(), stamp), stamp, json.dumps({"label": 1, "probabilities": {"0": 0.2, "1": 0.8}}))]
    log.write("1", batch)
    request_id = batch[0][0]
    assert judged(judge, request_id=request_id, label=True)[1]["detail"].startswith("label:")  # true is not 1
    assert judged(judge, request_id=request_id, label=2)[0] == 400
    assert judged(judge, request_id=request_id, value=1.0)[1]["detail"].startswith("value:")
    assert judged(judge, request_id=request_id, label=1.0) == (
        200,
        {"request_id": request_id, "result": "accepted", "model_version": "1"},
    )
    assert judged(judge, request_id=request_id, label=1)[:1] == (409,)
    assert judged(judge, request_id="whatever", label=1)[1]["error"] == "unknown"
    assert judged(judge, request_id=new_id("7", replica_of(), stamp), label=1)[1]["error"] == "unknown"
    assert judged(judge, request_id=new_id("1", "00000000", stamp), label=1)[0] == 421
    assert judged(judge, request_id=new_id("1", replica_of(), stamp - 7_200_000), label=1)[0] == 410
    log.write("1", rows("1", 3))  # the bound (2 rows) evicts the labelled prediction
    assert judged(judge, request_id=request_id, label=1)[1]["error"] == "late"
    assert Judge(None, "m", "1", BINARY, 3600).decide(b"{}")[0] == 404


def test_feedback_for_another_version_is_checked_against_its_own_task(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, "m", 100, 3600)
    log.open("2", REGRESSION)
    batch = rows("2", 1)
    log.write("2", batch)
    judge = Judge(PredictionLog(tmp_path, "m", 100, 3600), "m", "1", BINARY, 3600)
    assert judged(judge, request_id=batch[0][0], label=1)[1]["detail"].startswith("label: this model is a regression")
    status, answer = judged(judge, request_id=batch[0][0], value=1.5)
    assert (status, answer["model_version"]) == (200, "2")


def test_settings_read_the_feedback_knobs(tmp_path: Path) -> None:
    env = {
        settings.ENV_PREDICTION_LOG_DIR: str(tmp_path),
        settings.ENV_PREDICTION_LOG_MAX_ROWS: "3",
        settings.ENV_FEEDBACK_MAX_AGE: "30m",
        settings.ENV_FEEDBACK: "off",
        settings.ENV_TRACKING_URI: "sqlite:///unused.db",
    }
    read = settings.Settings.from_env(env)
    assert (read.prediction_log_dir, read.prediction_log_max_rows, read.feedback_max_age_s) == (tmp_path, 3, 1800.0)
    assert read.feedback is False
    assert settings.Settings.from_env({**env, settings.ENV_FEEDBACK_MAX_AGE: "0.5"}).feedback_max_age_s == 0.5
    with pytest.raises(settings.SettingsError, match=settings.ENV_FEEDBACK_MAX_AGE):
        settings.Settings.from_env({**env, settings.ENV_FEEDBACK_MAX_AGE: "soon"})
    with pytest.raises(settings.SettingsError, match=settings.ENV_FEEDBACK):
        settings.Settings.from_env({**env, settings.ENV_FEEDBACK: "maybe"})


def test_a_pods_ids_carry_its_ipv4_address_and_other_hosts_a_hash() -> None:
    assert replica_of(pod_ip="10.1.2.3") == "0a010203"
    assert replica_address(replica_of(pod_ip="10.1.2.3")) == "10.1.2.3"
    assert names_address("10.1.2.3")
    assert not names_address("fd00::1")
    assert not names_address("")
    hashed = replica_of("pod-a", pod_ip="fd00::1")  # IPv6: no address in the id, the host name's hash
    assert hashed == replica_of("pod-a") != replica_of("pod-b")
