"""Write a scoring run's answers and refused rows as hive-partitioned Parquet, one file per chunk.

    <out>/predictions/model=<m>/version=<v>/day=<YYYY-MM-DD>/part-<run>-<chunk>.parquet
    <out>/rejects/model=<m>/version=<v>/day=<YYYY-MM-DD>/part-<run>-<chunk>.parquet

The layout is the payload archive's (`serving/model_service/archive.py`), so `pyarrow.dataset`, Spark or
DuckDB read it as one table with `model`, `version` and `day` columns, and runs never overwrite each other's
files. `<out>` is a directory here or an object-store URL (`s3://`, `gs://`, `abfs://`), credentials from the
store's standard environment, never from the URL (`components/ingest/read.py`).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from components.common.redact import redact
from components.ingest.read import check_url, open_filesystem, reason

PREDICTIONS, REJECTS = "predictions", "rejects"
# Columns whose every value differs (ids, positions) or nearly (the model's float outputs): Parquet's dictionary
# encoding would only be tried and dropped, which cost a third of writing a chunk's answers.
UNIQUE = frozenset(
    {"request_id", "source_row", "probability", "probabilities", "prediction", "base_value", "contributions"}
)
# Files being written while the next chunks are scored (each holds one chunk's answers in memory).
PENDING_WRITES = 2


class OutputError(OSError):
    """The output location cannot be written; one line naming it (masked)."""


class PartWriter:
    """Writes one run's chunks under `<out>/<kind>/model=…/version=…/day=…/`."""

    def __init__(self, out: str, model_name: str, version: str, run: str) -> None:
        """Prepare `out` (a directory or an object-store URL).

        Raises:
            OutputError: credentials in the URL, or a store that cannot be reached.
        """
        self.shown = redact(out)
        try:
            check_url(out)
            self.filesystem, self.root = open_filesystem(out)
        except ValueError as error:
            raise OutputError(str(error).replace("cannot read", "cannot write to")) from error
        self.root = self.root.rstrip("/")
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        self.partition = f"model={model_name}/version={version}/day={day}"
        self.run = run
        self.files: dict[str, int] = {PREDICTIONS: 0, REJECTS: 0}
        # One thread encodes and writes files (pyarrow releases the GIL) while the caller scores the next chunk.
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plinth-score-write")
        self.pending: deque[Future[str]] = deque()

    def submit(self, kind: str, chunk: int, table: pa.Table) -> None:
        """Write a chunk's rows in the background; wait for the oldest file first when PENDING_WRITES are queued.

        Raises:
            OutputError: an earlier file could not be written.
        """
        while len(self.pending) >= PENDING_WRITES:
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(self.write, kind, chunk, table))

    def close(self) -> None:
        """Wait for every file to be written.

        Raises:
            OutputError: a file could not be written.
        """
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def folder(self, kind: str) -> str:
        """Return the folder (in the store's own terms) a kind of rows is written to."""
        return f"{self.root}/{kind}/{self.partition}"

    @staticmethod
    def dictionary(table: pa.Table) -> list[str]:
        """Return the columns worth dictionary-encoding: all but the UNIQUE ones (encoding them is waste)."""
        return [name for name in table.column_names if name not in UNIQUE]

    def write(self, kind: str, chunk: int, table: pa.Table) -> str:
        """Write one chunk's rows of `kind` (predictions or rejects); return the file's path in the store.

        Raises:
            OutputError: the file cannot be written (the message names the output, masked).
        """
        folder = self.folder(kind)
        path = f"{folder}/part-{self.run}-{chunk:05d}.parquet"
        try:
            self.filesystem.makedirs(folder, exist_ok=True)
            pq.write_table(table, path, filesystem=self.filesystem, use_dictionary=self.dictionary(table))
        except Exception as error:
            raise OutputError(f"cannot write to {self.shown}: {reason(error)}") from error
        self.files[kind] += 1
        return path
