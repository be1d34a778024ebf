from pathlib import Path

import pandas as pd
import pytest

from components.ingest.core import IngestError, dataset_hash, load_source, snake_case


def test_builtin_dataset_ships_with_snake_case_features():
    frame = load_source("sklearn:breast_cancer")
    assert frame.shape == (569, 31)
    assert "mean_radius" in frame.columns
    assert set(frame["target"].unique()) == {0, 1}


def test_unknown_builtin_names_the_known_ones():
    with pytest.raises(IngestError, match="sklearn:breast_cancer"):
        load_source("sklearn:nope")


def test_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(IngestError, match="source file not found"):
        load_source(str(tmp_path / "absent.csv"))


def test_unsupported_suffix(tmp_path: Path):
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    with pytest.raises(IngestError, match="unsupported file type"):
        load_source(str(path))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_user_files_round_trip(tmp_path: Path, suffix: str):
    frame = pd.DataFrame({"a": [1.0, 2.0], "label": [0, 1]})
    path = tmp_path / f"data{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    pd.testing.assert_frame_equal(load_source(str(path)), frame)


def test_unparseable_file_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(IngestError, match="cannot parse"):
        load_source(str(path))


def test_hash_tracks_content_and_columns():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    same = dataset_hash(frame.copy())
    assert dataset_hash(frame) == same
    changed = frame.copy()
    changed.loc[0, "a"] = 1.5
    assert dataset_hash(changed) != same
    assert dataset_hash(frame.rename(columns={"a": "z"})) != same


def test_snake_case():
    assert snake_case("mean radius") == "mean_radius"
    assert snake_case("Worst Area (mm)") == "worst_area_mm"
