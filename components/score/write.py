"""Write a scoring run's answers and refused rows as hive-partitioned Parquet, one file per chunk.

    <out>/predictions/model=<m>/version=<v>/day=<YYYY-MM-DD>/part-<run>-<chunk>.parquet
    <out>/rejects/model=<m>/version=<v>/day=<YYYY-MM-DD>/part-<run>-<chunk>.parquet

The layout is the payload archive's (`serving/model_service/archive.py`), so `pyarrow.dataset`, Spark or
DuckDB read it as one table with `model`, `version` and `day` columns, and runs never overwrite each other's
files. `<out>` is a directory here or an object-store URL (`s3://`, `gs://`, `abfs://`), credentials from the
store's standard environment, never from the URL (`components/ingest/read.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from components.common.redact import redact
from components.ingest.read import check_url, open_filesystem, reason

PREDICTIONS, REJECTS = "predictions", "rejects"


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

    def folder(self, kind: str) -> str:
        """Return the folder (in the store's own terms) a kind of rows is written to."""
        return f"{self.root}/{kind}/{self.partition}"

    def write(self, kind: str, chunk: int, table: pa.Table) -> str:
        """Write one chunk's rows of `kind` (predictions or rejects); return the file's path in the store.

        Raises:
            OutputError: the file cannot be written (the message names the output, masked).
        """
        folder = self.folder(kind)
        path = f"{folder}/part-{self.run}-{chunk:05d}.parquet"
        try:
            self.filesystem.makedirs(folder, exist_ok=True)
            pq.write_table(table, path, filesystem=self.filesystem)
        except Exception as error:
            raise OutputError(f"cannot write to {self.shown}: {reason(error)}") from error
        self.files[kind] += 1
        return path
