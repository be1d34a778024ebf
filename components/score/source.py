"""Read a table to score chunk by chunk, from wherever ingest reads one (components/ingest/read.py).

The same sources as training: a CSV or Parquet file, or a folder of (hive-partitioned) Parquet files, on this
machine or in an object store (`s3://`, `gs://`, `abfs://`), credentials from the store's standard environment
and never from the URL. Unlike ingest, the table is never held whole: it is handed over in record batches of at
most `chunk_rows` rows, so a scoring step's memory stays flat however large the table grows. Parquet files are
read file by file with a buffered stream (`ParquetFile.iter_batches`), which decodes a batch's rows of a row
group, not the whole row group as `pyarrow.dataset`'s scanner does: a file written with one row group of a million
rows (pandas' default) took the step's peak memory from 869 to 1,027 MiB between 200,000 and 1,000,000 rows.
Each batch is given the dataset's schema (its hive partition columns as constants, a column a file lacks as nulls).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from components.ingest.read import CSV_SUFFIXES, IngestError, locate, reason

# Batches read ahead of the one being scored (pyarrow's defaults of 16 batches and 4 files would hold
# about 20 chunks in memory at once): CSV only, through the dataset scanner.
BATCH_READAHEAD = 2
FRAGMENT_READAHEAD = 1
# Bytes a Parquet file's buffered stream reads at a time (per column): pages, not whole column chunks.
READ_BUFFER = 1 << 20


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
        self.parquet = found.kind not in CSV_SUFFIXES
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
            batches = (
                read_ahead(self._parquet_batches(chunk_rows))
                if self.parquet
                else self.dataset.to_batches(
                    batch_size=chunk_rows, batch_readahead=BATCH_READAHEAD, fragment_readahead=FRAGMENT_READAHEAD
                )
            )
            for batch in batches:
                if batch.num_rows:
                    yield batch
        except (OSError, pa.ArrowException) as error:
            raise IngestError(f"cannot parse {self.shown}: {reason(error)}") from error

    def _parquet_batches(self, chunk_rows: int) -> Iterator[pa.RecordBatch]:
        """Yield each Parquet file's rows in order, `chunk_rows` at a time, in the dataset's schema."""
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq

        schema = self.dataset.schema
        for fragment in self.dataset.get_fragments():
            keys = ds.get_partition_keys(fragment.partition_expression)
            with fragment.open() as handle:
                reader = pq.ParquetFile(handle, buffer_size=READ_BUFFER, pre_buffer=False)
                for batch in reader.iter_batches(batch_size=chunk_rows):
                    yield conform(batch, schema, keys)


def read_ahead(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Yield `batches`, the next one read on a thread while the caller scores this one.

    pyarrow decodes without the GIL, so reading leaves the scoring's path, as the dataset scanner's read-ahead
    did, for one chunk more in memory.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="plinth-score-read") as pool:
        pending = pool.submit(next, batches, None)
        while (batch := pending.result()) is not None:
            pending = pool.submit(next, batches, None)
            yield batch


def conform(batch: pa.RecordBatch, schema: pa.Schema, keys: dict[str, Any]) -> pa.RecordBatch:
    """Return `batch` in the dataset's `schema`: its columns cast, partition `keys` as constants, others null."""
    arrays = []
    for field in schema:
        if field.name in batch.schema.names:
            column = batch.column(field.name)
            arrays.append(column if column.type == field.type else column.cast(field.type))
        elif field.name in keys:
            arrays.append(pa.repeat(pa.scalar(keys[field.name], type=field.type), batch.num_rows))
        else:
            arrays.append(pa.nulls(batch.num_rows, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
