"""Predictions and labels archived to a real S3 API server (moto) by the real writer, read back for training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.common import tracking
from components.ingest.core import IngestError, dataset_hash, load_source, run
from serving.model_service.archive import PayloadArchive
from serving.model_service.feedback_route import Judge
from serving.model_service.predictor import ServedTask
from serving.model_service.recorder import Recorder
from serving.model_service.store import PredictionStore
from tests.engines import MotoS3Server, S3Credentials

BINARY = ServedTask("binary", (0, 1), True)
DAY_S = 86_400.0
T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def serve(recorder: Recorder, rows: list[dict[str, Any]]) -> list[str]:
    """Answer `rows` as /predict does: answers stamped with ids, the batch handed to the recorder."""
    answers = [
        {"label": int(row["x"] > 1), "probabilities": {"0": 0.4, "1": 0.6}, "model_name": "m", "model_version": "1"}
        for row in rows
    ]
    recorder.stamp(answers, pd.DataFrame(rows))
    assert recorder.flush()
    return [answer["request_id"] for answer in answers]


def archive_traffic(bucket: str, tmp_path: Path) -> tuple[str, dict[str, int]]:
    """Serve 4 predictions on day 0 and label 3 of them (day 0, day 2, day 3); return the archive and truths."""
    clock = Clock()
    store = PredictionStore(str(tmp_path / "predictions.sqlite"), 30 * DAY_S, clock)
    archive = PayloadArchive(f"{bucket}/archive")
    recorder = Recorder(store, "m", "1", BINARY, archive=archive)
    rows = [{"x": 0.5, "city": "a"}, {"x": 1.5, "city": None}, {"x": 2.5, "city": "b"}, {"x": 3.5, "city": "c"}]
    ids = serve(recorder, rows)
    judge = Judge(store, "m", "1", BINARY, 30 * DAY_S)
    judge.archive = archive
    truths = {}
    for days, request_id, truth in ((0, ids[0], 1), (2, ids[1], 0), (3, ids[2], 1)):
        clock.now = T0 + days * DAY_S
        status, _ = judge.decide(json.dumps({"request_id": request_id, "label": truth}).encode())
        assert status == 200
        truths[request_id] = truth
    assert judge.decide(json.dumps({"request_id": ids[1], "label": 1}).encode())[0] == 409  # not archived twice
    assert archive.flush()
    store.close()
    return f"{bucket}/archive", truths


def test_the_labelled_window_is_exactly_the_labelled_rows(s3_server: MotoS3Server, s3_env: S3Credentials, tmp_path):
    bucket = s3_server.create_bucket("window")
    archive, _ = archive_traffic(bucket, tmp_path)
    keys = [item["Key"] for item in s3_server.client().list_objects_v2(Bucket="window")["Contents"]]
    assert any(key.startswith("archive/model=m/version=1/day=2027-01-15/part-") for key in keys)
    assert any(key.startswith("archive/labels/model=m/version=1/day=2027-01-17/part-") for key in keys)
    # Labelled on or after 2027-01-17 (days 2 and 3): the 2nd and 3rd predictions, not the one labelled on day 0.
    frame = load_source(f"production:{archive}?model=m&since=2027-01-17")
    assert list(frame.columns) == ["x", "city", "label"]
    # Rows come in request-id order; the truths as the client gave them (ints), not the predicted labels.
    rows = sorted(zip(frame["x"], frame["city"].fillna("<null>"), frame["label"], strict=True))
    assert rows == [(1.5, "<null>", 0), (2.5, "b", 1)]
    everything = load_source(f"production:{archive}?model=m&since=2027-01-01&target=churned")
    assert sorted(zip(everything["x"], everything["churned"], strict=True)) == [(0.5, 1), (1.5, 0), (2.5, 1)]
    # Deterministic: the same archive gives the same rows in the same order, so the same hash.
    assert dataset_hash(everything) == dataset_hash(
        load_source(f"production:{archive}?model=m&since=2027-01-01&target=churned")
    )


def test_an_unreadable_archive_is_one_line_naming_it(s3_server: MotoS3Server, s3_env: S3Credentials):
    with pytest.raises(
        IngestError, match=r"^cannot read production:s3://no-such-bucket/a\?model=m&since=2027-01-01: "
    ) as info:
        load_source("production:s3://no-such-bucket/a?model=m&since=2027-01-01")
    assert "\n" not in str(info.value)
    with pytest.raises(IngestError, match=r"s3://\*\*\*@b/a.*credentials in the URL") as refused:
        load_source("production:s3://key:secret@b/a?model=m&since=2027-01-01")
    assert "secret" not in str(refused.value)
    with pytest.raises(IngestError, match="since='yesterday' is not a date"):
        load_source("production:s3://b/a?model=m&since=yesterday")


def test_ingest_runs_on_the_production_window(s3_server: MotoS3Server, s3_env: S3Credentials, tmp_path):
    bucket = s3_server.create_bucket("ingest")
    archive, _ = archive_traffic(bucket, tmp_path)
    source = f"production:{archive}?model=m&since=2027-01-15"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id, digest = run(source, "label", str(tmp_path / "data.parquet"), uri, "e", "job")
    dataset = pd.read_parquet(tmp_path / "data.parquet")
    assert sorted(zip(dataset["x"], dataset["label"], strict=True)) == [(0.5, 1), (1.5, 0), (2.5, 1)]
    assert digest == dataset_hash(load_source(source))
    logged = tracking.connect(uri).get_run(run_id)
    assert logged.data.tags["plinth.data_hash"] == digest
    assert logged.data.params["source"] == source  # the options stay readable in lineage
