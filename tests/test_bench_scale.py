"""`make bench-scale`: the synthetic table has the issue's shape, and a tiny run reports both commands per size."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipelines import bench_scale


def test_the_table_has_the_shape_of_real_tables(tmp_path: Path):
    size = bench_scale.write_table(3000, tmp_path / "t.parquet")
    frame = pd.read_parquet(tmp_path / "t.parquet")
    features = frame.drop(columns=bench_scale.TARGET)
    assert len(frame) == 3000
    assert sum(pd.api.types.is_float_dtype(features[c]) for c in features) == bench_scale.N_NUMERIC
    assert [c for c in features if not pd.api.types.is_numeric_dtype(features[c])] == list(bench_scale.CATEGORIES)
    assert 0.02 < features.isna().to_numpy().mean() < 0.04
    assert set(frame[bench_scale.TARGET]) == {0, 1}
    assert size == frame.memory_usage(deep=True, index=False).sum()
    again = bench_scale.write_table(3000, tmp_path / "u.parquet")
    assert again == size
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "u.parquet"), frame)


def test_rows_flag_refuses_what_is_not_a_list_of_sizes():
    with pytest.raises(SystemExit, match="--rows"):
        bench_scale.parse_rows("1e6")
    with pytest.raises(SystemExit, match="--rows"):
        bench_scale.parse_rows("100")
    assert bench_scale.parse_rows("100_000,2000") == [100_000, 2000]


@pytest.mark.slow
def test_a_tiny_run_reports_make_train_and_the_baseline_per_size(tmp_path: Path):
    out = tmp_path / "results.md"
    assert bench_scale.main(["--rows", "2000", "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| 2,000 |")]
    assert [row.split(" | ")[1] for row in rows] == [bench_scale.MAKE_TRAIN, bench_scale.BASELINE]
    for row in rows:
        wall, peak, _table, _ratio, auc = (float(cell.rstrip("x")) for cell in row.split(" | ")[2:7])
        assert wall > 0
        assert peak > 50
        assert 0.6 < auc <= 1.0
