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

from components.ingest.read import CSV_SUFFIXES, IngestError, locate, reason

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

        found = locate(source)
        self.shown = found.shown
        layout: dict[str, Any] = {"partitioning": "hive"} if found.folder else {}
        try:
            self.dataset = ds.dataset(
                found.path,
                filesystem=found.filesystem,
                format="csv" if found.kind in CSV_SUFFIXES else "parquet",
                **layout,
            )
        except Exception as error:
            raise IngestError(f"cannot parse {self.shown}: {reason(error)}") from error
        if found.folder and not self.dataset.files:
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
