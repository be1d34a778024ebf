"""Unit tier: the payload archive writes partitioned Parquet off the request path, and never fails a prediction."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from prometheus_client import REGISTRY

from serving.model_service import settings
from serving.model_service.archive import PayloadArchive
from serving.model_service.predictor import ServedTask
from serving.model_service.recorder import Recorder

BINARY = ServedTask("binary", (0, 1), True)
DAY_MS = 86_400_000
T0_MS = 1_800_000_000_000  # 2027-01-15 08:00 UTC


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def answers(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"label": i % 2, "probabilities": {"0": 0.25, "1": 0.75}, "request_id": f"1.{start + i:04d}"} for i in range(n)
    ]


def inputs(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": [float(i) for i in range(n)], "city": ["a", None, "b"][:n] * (n // 3) + ["a"] * (n % 3)})


def files(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix().rsplit("/", 1)[0] for path in root.rglob("*.parquet"))


def test_a_flush_writes_one_parquet_file_per_partition(tmp_path: Path) -> None:
    archive = PayloadArchive(str(tmp_path / "payloads"))
    written = sample("plinth_payload_archive_written_total", kind="predictions")
    archive.predictions("m", "1", T0_MS, inputs(3), answers(3))
    archive.predictions("m", "1", T0_MS + 1000, inputs(3), answers(3, start=3))  # same partition, same file
    archive.predictions("m", "2", T0_MS + DAY_MS, inputs(3), answers(3, start=6))
    archive.label("m", "1", "1.0001", 1, T0_MS + 2 * DAY_MS)
    assert archive.pending() == 10
    assert archive.flush()
    assert archive.pending() == 0
    root = tmp_path / "payloads"
    assert files(root) == [
        "labels/model=m/version=1/day=2027-01-17",
        "model=m/version=1/day=2027-01-15",
        "model=m/version=2/day=2027-01-16",
    ]
    assert not list(root.rglob(".*"))  # no hidden half-written file left behind
    first = pq.read_table(next((root / "model=m/version=1/day=2027-01-15").glob("part-*.parquet"))).to_pandas()
    assert first["request_id"].tolist() == [f"1.{i:04d}" for i in range(6)]
    assert first["x"].tolist() == [0.0, 1.0, 2.0] * 2
    assert first["city"].isna().tolist() == [False, True, False] * 2  # a missing value is a Parquet null
    assert first["city"].dropna().tolist() == ["a", "b"] * 2
    assert first["label"].tolist() == [0, 1, 0, 0, 1, 0]
    assert json.loads(first["probabilities"][0]) == {"0": 0.25, "1": 0.75}
    assert first["predicted_at"][3] == pd.Timestamp(T0_MS + 1000, unit="ms", tz="UTC")
    label = pq.read_table(next((root / "labels/model=m/version=1/day=2027-01-17").glob("*.parquet"))).to_pandas()
    assert label["request_id"].tolist() == ["1.0001"]
    assert json.loads(label["truth"][0]) == 1
    assert sample("plinth_payload_archive_written_total", kind="predictions") == written + 9


def test_an_input_named_like_an_output_is_kept_apart(tmp_path: Path) -> None:
    archive = PayloadArchive(str(tmp_path))
    archive.predictions("m", "1", T0_MS, pd.DataFrame({"label": [7.0]}), [{"prediction": 1.5, "request_id": "1.a"}])
    assert archive.flush()
    table = pq.read_table(next(tmp_path.rglob("*.parquet")))
    assert table.to_pydict()["input.label"] == [7.0]
    assert table.to_pydict()["value"] == [1.5]


class BrokenFilesystem:
    """A store that refuses every write (an expired credential, a full disk, a bucket that went away)."""

    def __init__(self) -> None:
        self.calls = 0

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self.calls += 1
        raise PermissionError("Access Denied")

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        raise PermissionError("Access Denied")


def test_a_failing_store_keeps_rows_up_to_the_bound_then_drops_and_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = BrokenFilesystem()
    archive = PayloadArchive(str(tmp_path), max_rows=5, filesystem=lambda url: (broken, url))
    dropped = sample("plinth_payload_archive_dropped_total", reason="buffer_full")
    archive.predictions("m", "1", T0_MS, inputs(3), answers(3))
    with caplog.at_level(logging.WARNING, logger="plinth.model_service.archive"):
        assert archive.flush() is False  # no exception reaches the caller
        assert archive.flush() is False
    assert broken.calls == 2
    assert archive.pending() == 3  # kept for the next try
    assert len([r for r in caplog.records if "payload archive" in r.getMessage()]) == 1  # once a minute
    assert "Access Denied" in caplog.text
    archive.predictions("m", "1", T0_MS, inputs(3), answers(3, start=3))  # 6 > 5: the oldest batch goes
    assert archive.pending() == 3
    assert sample("plinth_payload_archive_dropped_total", reason="buffer_full") == dropped + 3
    assert not list(tmp_path.rglob("*.parquet"))


def test_the_recorder_hands_the_batch_to_the_archive_without_writing_it(tmp_path: Path) -> None:
    archive = PayloadArchive(str(tmp_path / "a"))
    recorder = Recorder(None, "m", "1", BINARY, archive=archive)  # feedback off: the archive still records
    batch = [{"label": 1, "probabilities": {"0": 0.1, "1": 0.9}}]
    recorder.stamp(batch, inputs(1))
    assert archive.pending() == 1
    assert not (tmp_path / "a").exists()  # nothing is written on the request path
    assert archive.flush()
    table = pq.read_table(next((tmp_path / "a").rglob("*.parquet"))).to_pydict()
    assert table["request_id"] == [batch[0]["request_id"]]


def test_the_archive_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLINTH_HOME", str(tmp_path))
    assert settings.payload_archive({}) == str(tmp_path / "payloads")  # one machine: beside the store
    assert settings.payload_archive({settings.ENV_PAYLOAD_ARCHIVE: ""}) == ""  # the chart's "off"
    assert settings.payload_archive({settings.ENV_PAYLOAD_ARCHIVE: "off"}) == ""
    assert settings.payload_archive({settings.ENV_PAYLOAD_ARCHIVE: "s3://b/p"}) == "s3://b/p"
    with pytest.raises(settings.SettingsError, match=r"PLINTH_PAYLOAD_ARCHIVE.*s3://\*\*\*@b/p"):
        settings.payload_archive({settings.ENV_PAYLOAD_ARCHIVE: "s3://key:secret@b/p"})
