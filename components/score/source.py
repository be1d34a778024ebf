"""Read a table to score chunk by chunk, from wherever ingest reads one (components/ingest/read.py).

The same sources as training: a CSV or Parquet file, or a folder of (hive-partitioned) Parquet files, on this
machine or in an object store (`s3://`, `gs://`, `abfs://`), credentials from the store's standard environment
and never from the URL. Unlike ingest, the table is never held whole: `pyarrow.dataset` hands it over in record
batches of at most `chunk_rows` rows, so a scoring step's memory stays flat however large the table grows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from components.common.redact import redact
from components.ingest.read import (
    CSV_SUFFIXES,
    SUPPORTED_SUFFIXES,
    IngestError,
    check_url,
    is_remote,
    open_filesystem,
    reason,
    suffix,
)

# Batches read ahead of the one being scored (pyarrow's defaults of 16 batches and 4 files would hold
# about 20 chunks in memory at once).
BATCH_READAHEAD = 2
FRAGMENT_READAHEAD = 1


class Source:
    """A table opened for chunked reading: its columns are known before the first row is read."""

    def __init__(self, source: str) -> None:
        """Open `source` (nothing but its metadata is read).

        Raises:
            IngestError: one line naming the masked source and why it cannot be read.
        """
        import pyarrow.dataset as ds

        check_url(source)
        self.shown = redact(source)
        filesystem, path = open_filesystem(source)
        try:
            info = filesystem.info(path)
        except FileNotFoundError as error:
            where = "source" if is_remote(source) else "source file"
            hint = "give a .csv or .parquet file, or a folder of Parquet files"
            raise IngestError(f"{where} not found: {self.shown} ({hint})") from error
        except Exception as error:
            raise IngestError(f"cannot read {self.shown}: {reason(error)}") from error
        folder = info.get("type") == "directory"
        kind = suffix(path)
        if not folder and kind not in SUPPORTED_SUFFIXES:
            raise IngestError(
                f"cannot read {self.shown}: unsupported file type {kind or '(none)'!r}; "
                "use .csv, .parquet, or a folder of Parquet files"
            )
        layout: dict[str, Any] = {"partitioning": "hive"} if folder else {}
        try:
            self.dataset = ds.dataset(
                path, filesystem=filesystem, format="csv" if kind in CSV_SUFFIXES else "parquet", **layout
            )
        except Exception as error:
            raise IngestError(f"cannot parse {self.shown}: {reason(error)}") from error
        if folder and not self.dataset.files:
            raise IngestError(f"cannot read {self.shown}: no Parquet files under it")

    @property
    def columns(self) -> list[str]:
        """Return the table's column names (partition keys included)."""
        return list(self.dataset.schema.names)

    def chunks(self, chunk_rows: int) -> Iterator[pa.RecordBatch]:
        """Yield the table's rows in order, in record batches of at most `chunk_rows` rows.

        Raises:
            IngestError: a file cannot be read or parsed part-way (named, masked).
        """
        try:
            batches = self.dataset.to_batches(
                batch_size=chunk_rows, batch_readahead=BATCH_READAHEAD, fragment_readahead=FRAGMENT_READAHEAD
            )
            for batch in batches:
                if batch.num_rows:
                    yield batch
        except (OSError, pa.ArrowException) as error:
            raise IngestError(f"cannot parse {self.shown}: {reason(error)}") from error
