"""A source is read in order, chunk by chunk, in the dataset's schema, from any Parquet layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from components.score.source import Source


def test_parquet_files_are_read_in_batches_within_row_groups_in_the_datasets_schema(tmp_path) -> None:
    """Hive partitions, several row groups per file, a column one file lacks: the rows and types the dataset has."""
    rng = np.random.default_rng(1)
    for region, rows in (("east", 2_500), ("west", 1_200)):
        folder = tmp_path / f"region={region}"
        folder.mkdir()
        frame = pd.DataFrame({"x": rng.random(rows), "n": rng.integers(0, 9, rows)})
        if region == "west":
            frame = frame.drop(columns="n")  # a file without the column: nulls there, as the scanner gives
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "part.parquet", row_group_size=1_000)
    source = Source(str(tmp_path))
    chunks = list(source.chunks(700))
    assert max(chunk.num_rows for chunk in chunks) <= 700
    assert sum(chunk.num_rows for chunk in chunks) == 3_700
    expected = ds.dataset(tmp_path, format="parquet", partitioning="hive").to_table()
    read = pa.Table.from_batches(chunks)
    assert read.schema == expected.schema
    assert read.equals(expected)
    assert read.column("n").null_count == 1_200
    assert set(read.column("region").to_pylist()) == {"east", "west"}


def test_one_row_group_of_the_whole_file_is_still_read_a_chunk_at_a_time(tmp_path) -> None:
    path = tmp_path / "table.parquet"
    pd.DataFrame({"x": np.arange(10_000, dtype=np.float64)}).to_parquet(path, index=False)
    assert pq.ParquetFile(path).metadata.num_row_groups == 1
    chunks = list(Source(str(path)).chunks(3_000))
    assert [chunk.num_rows for chunk in chunks] == [3_000, 3_000, 3_000, 1_000]
    assert pa.Table.from_batches(chunks).column("x").to_pylist() == list(np.arange(10_000, dtype=np.float64))
