"""The payload archive: every prediction (and every accepted label) as Parquet, the production dataset.

One setting, `PLINTH_PAYLOAD_ARCHIVE`: a directory on this machine or an fsspec URL (`s3://bucket/prefix`,
`gs://…`, `abfs://…`; credentials from the store's standard environment variables, never in the URL). Files
are hive-partitioned by model, version and UTC day, one file per partition per flush:

    <archive>/model=<m>/version=<v>/day=<YYYY-MM-DD>/part-<uuid>.parquet           request_id, predicted_at,
                                                                                    the inputs, label /
                                                                                    probabilities (JSON) / value
    <archive>/labels/model=<m>/version=<v>/day=<YYYY-MM-DD>/part-<uuid>.parquet    request_id, truth (JSON),
                                                                                    labelled_at

An input column named like an output or key column (`request_id`, `label`, ...) is written as `input.<name>`.
The predict path only appends a reference to its batch to a bounded in-memory queue (per worker process); a
background thread converts and writes every FLUSH_S seconds, or at once when FLUSH_ROWS rows wait. The archive
never slows or fails a prediction: while the storage fails, rows stay queued (retried with backoff) up to
`max_rows`; past it the oldest are dropped, counted in `plinth_payload_archive_dropped_total{reason}`, and a
failure is logged at WARNING at most once a minute. `components/ingest/production.py` reads it back for
training (`production:<archive>?model=<m>&since=<day>`).
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from prometheus_client import Counter

from components.common.redact import redact
from components.ingest.production import INPUT_PREFIX, KEY_COLUMNS, LABELS_DIR
from components.ingest.read import open_filesystem, protocol
from serving.model_service.throttle import ThrottledFailures

logger = logging.getLogger("plinth.model_service.archive")
FLUSH_S = 60.0
FLUSH_ROWS = 10_000
MAX_ROWS = 100_000
RETRY_S = 1.0
RETRY_MAX_S = 60.0
DROP_REASONS = ("buffer_full", "unwritable")
KINDS = ("predictions", "labels")

ARCHIVE_WRITTEN = Counter(
    "plinth_payload_archive_written",
    "Rows written to the payload archive (Parquet, off the request path), by kind: predictions or labels.",
    ["kind"],
)
ARCHIVE_DROPPED = Counter(
    "plinth_payload_archive_dropped",
    "Rows never archived: `reason` buffer_full (the storage failed longer than the queue holds) or "
    "unwritable (rows that could not be converted to Parquet).",
    ["reason"],
)
ARCHIVE_FAILURES = Counter(
    "plinth_payload_archive_flush_failures",
    "Partition writes to the payload archive that failed (the rows were kept for the next try, within the bound).",
)


@dataclass(frozen=True)
class Chunk:
    """One enqueued piece: a prediction batch (inputs + answers) or one label, for one partition."""

    kind: str  # "predictions" or "labels"
    model: str
    version: str
    at_ms: int
    rows: int
    inputs: Any = None  # the served batch (columns.Batch) or a DataFrame
    answers: Sequence[dict[str, Any]] = ()
    request_id: str = ""
    truth: Any = None

    @property
    def day(self) -> str:
        """Return the UTC day of the chunk's time, its partition."""
        return datetime.fromtimestamp(self.at_ms / 1000, UTC).strftime("%Y-%m-%d")


def input_columns(inputs: Any) -> dict[str, np.ndarray]:
    """Return {name: values} of a served batch (`columns.Batch`) or a DataFrame."""
    if hasattr(inputs, "iloc"):  # a pandas DataFrame
        return {str(name): inputs[name].to_numpy() for name in inputs.columns}
    return {str(name): inputs.column(name) for name in inputs.index}


def _array(values: Any) -> Any:
    """Return an Arrow array of one column (NaN as null); mixed Python types fall back to their text."""
    import pyarrow as pa

    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if value is None else str(value) for value in values], pa.string())


def predictions_table(chunks: Sequence[Chunk]) -> Any:
    """Return the Arrow table of prediction chunks of one partition."""
    import pyarrow as pa

    ids: list[str] = []
    times: list[int] = []
    columns: dict[str, list[np.ndarray]] = {}
    answers: list[dict[str, Any]] = []
    for chunk in chunks:
        ids.extend(answer["request_id"] for answer in chunk.answers)
        times.extend([chunk.at_ms] * chunk.rows)
        for name, values in input_columns(chunk.inputs).items():
            columns.setdefault(name, []).append(np.asarray(values))
        answers.extend(chunk.answers)
    data: dict[str, Any] = {
        "request_id": pa.array(ids, pa.string()),
        "predicted_at": pa.array(times, pa.timestamp("ms", tz="UTC")),
    }
    for name, parts in columns.items():
        stored = INPUT_PREFIX + name if name in KEY_COLUMNS else name
        values = np.concatenate(parts) if len(parts) > 1 else parts[0]
        data[stored] = _array(values.tolist() if values.dtype == object else values)
    if answers and "prediction" in answers[0]:
        data["value"] = pa.array([float(answer["prediction"]) for answer in answers], pa.float64())
    else:
        data["label"] = _array([answer.get("label") for answer in answers])
        if answers and "probabilities" in answers[0]:
            data["probabilities"] = pa.array([json.dumps(answer.get("probabilities")) for answer in answers])
    return pa.table(data)


def labels_table(chunks: Sequence[Chunk]) -> Any:
    """Return the Arrow table of label chunks of one partition (truth as JSON keeps its type)."""
    import pyarrow as pa

    return pa.table(
        {
            "request_id": pa.array([chunk.request_id for chunk in chunks], pa.string()),
            "truth": pa.array([json.dumps(chunk.truth) for chunk in chunks], pa.string()),
            "labelled_at": pa.array([chunk.at_ms for chunk in chunks], pa.timestamp("ms", tz="UTC")),
        }
    )


def partition_path(kind: str, model: str, version: str, day: str) -> str:
    """Return a partition's folder relative to the archive root (hive style)."""
    folder = f"model={model}/version={version}/day={day}"
    return f"{LABELS_DIR}/{folder}" if kind == "labels" else folder


class PayloadArchive:
    """A worker's queue of predictions and labels, written as partitioned Parquet by a background thread."""

    def __init__(
        self,
        url: str,
        flush_s: float = FLUSH_S,
        flush_rows: int = FLUSH_ROWS,
        max_rows: int = MAX_ROWS,
        filesystem: Callable[[str], tuple[Any, str]] = open_filesystem,
    ) -> None:
        self.url = url.rstrip("/")
        self.shown = redact(self.url)
        self.flush_s, self.flush_rows, self.max_rows = flush_s, flush_rows, max_rows
        self._open = filesystem
        self._fs: tuple[Any, str] | None = None
        self._pending: collections.deque[Chunk] = collections.deque()
        self._rows = 0
        self._wake = threading.Condition()
        self._writing = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._failures = ThrottledFailures()

    # The request path: append a reference, nothing else.
    def predictions(self, model: str, version: str, at_ms: int, inputs: Any, answers: Sequence[dict[str, Any]]) -> None:
        """Queue one answered batch (its inputs and its answers, each carrying its request_id)."""
        self._add(Chunk("predictions", model, version, at_ms, len(answers), inputs, answers))

    def label(self, model: str, version: str, request_id: str, truth: Any, at_ms: int) -> None:
        """Queue one accepted label (truth as the client gave it: a class with its JSON type, or a value)."""
        self._add(Chunk("labels", model, version, at_ms, 1, request_id=request_id, truth=truth))

    def _add(self, chunk: Chunk) -> None:
        with self._wake:
            self._pending.append(chunk)
            self._rows += chunk.rows
            if self._rows > self.max_rows:
                self._drop_oldest()
            if self._rows >= self.flush_rows:
                self._wake.notify()

    def _drop_oldest(self) -> None:
        """Drop the oldest chunks until the queue is within its bound (caller holds the lock)."""
        dropped = 0
        while self._rows > self.max_rows and self._pending:
            chunk = self._pending.popleft()
            self._rows -= chunk.rows
            dropped += chunk.rows
        if dropped:
            ARCHIVE_DROPPED.labels("buffer_full").inc(dropped)

    def pending(self) -> int:
        """Return the rows queued in this process and not yet written."""
        return self._rows

    def start(self) -> None:
        """Create the metric series at zero and start the writer thread (in the worker, once)."""
        for kind in KINDS:
            ARCHIVE_WRITTEN.labels(kind)
        for reason in DROP_REASONS:
            ARCHIVE_DROPPED.labels(reason)
        self._thread = threading.Thread(target=self._run, name="plinth-payload-archive", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def flush(self) -> bool:
        """Write everything queued now, one file per partition; return False if a write failed (rows kept)."""
        with self._writing:
            with self._wake:
                chunks = list(self._pending)
                self._pending.clear()
                self._rows = 0
            if not chunks:
                return True
            partitions: dict[tuple[str, str, str, str], list[Chunk]] = {}
            for chunk in chunks:
                partitions.setdefault((chunk.kind, chunk.model, chunk.version, chunk.day), []).append(chunk)
            keys = list(partitions)
            for index, key in enumerate(keys):
                try:
                    self._write(key, partitions[key])
                except Exception as error:  # the storage is down or refuses: keep what is left, within the bound
                    ARCHIVE_FAILURES.inc()
                    self._keep([chunk for later in keys[index:] for chunk in partitions[later]])
                    self._failed(error)
                    return False
            return True

    def _keep(self, chunks: list[Chunk]) -> None:
        with self._wake:
            self._pending.extendleft(reversed(chunks))
            self._rows += sum(chunk.rows for chunk in chunks)
            if self._rows > self.max_rows:
                self._drop_oldest()

    def _filesystem(self) -> tuple[Any, str]:
        if self._fs is None:
            self._fs = self._open(self.url)
        return self._fs

    def _write(self, key: tuple[str, str, str, str], chunks: list[Chunk]) -> None:
        """Write one partition's rows as one new Parquet file."""
        import pyarrow.parquet as pq

        kind = key[0]
        try:
            table = labels_table(chunks) if kind == "labels" else predictions_table(chunks)
        except Exception as error:  # rows that cannot become Parquet are dropped, not retried forever
            rows = sum(chunk.rows for chunk in chunks)
            ARCHIVE_DROPPED.labels("unwritable").inc(rows)
            self._failed(ValueError(f"{rows} {kind} row(s) could not be converted to Parquet: {error}"))
            return
        filesystem, root = self._filesystem()
        folder = f"{root.rstrip('/')}/{partition_path(*key)}"
        name = f"part-{uuid.uuid4().hex}.parquet"
        try:
            if protocol(self.url) in ("", "file"):  # a local file appears whole: written hidden, then renamed
                filesystem.makedirs(folder, exist_ok=True)
                hidden = f"{folder}/.{name}"
                pq.write_table(table, hidden, filesystem=filesystem)
                filesystem.mv(hidden, f"{folder}/{name}")
            else:  # an object appears whole when its upload completes
                pq.write_table(table, f"{folder}/{name}", filesystem=filesystem)
        except Exception:
            self._fs = None  # a fresh client next time (expired credentials, a reset connection)
            raise
        ARCHIVE_WRITTEN.labels(kind).inc(table.num_rows)

    def _failed(self, error: Exception) -> None:
        """Log a failure at most once a minute, with the failures since the last line."""
        count = self._failures.failed()
        if count is None:
            return
        logger.warning(
            "payload archive %s: %s (%d failure(s) since the last warning; %d row(s) queued; "
            "predictions are still answered)",
            self.shown,
            redact(" ".join(str(error).split()))[:300],
            count,
            self._rows,
        )

    def _run(self) -> None:
        """The writer thread: flush on time or size, back off while the storage fails."""
        retry = RETRY_S
        while not self._closed:
            with self._wake:
                if self._rows < self.flush_rows and not self._closed:
                    self._wake.wait(self.flush_s)
            if self.flush():
                retry = RETRY_S
                continue
            with self._wake:
                if not self._closed:
                    self._wake.wait(retry)
            retry = min(retry * 2, RETRY_MAX_S)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the writer thread after one last flush attempt."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.flush()
