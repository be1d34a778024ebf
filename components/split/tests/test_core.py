import pandas as pd
import pytest

from components.ingest.core import load_source
from components.split.core import carve_validation, split


@pytest.fixture(scope="module")
def frame():
    return load_source("sklearn:breast_cancer")


def test_split_is_seeded_and_stratified(frame):
    train, test = split(frame, "target", 0.2, seed=1)
    again, _ = split(frame, "target", 0.2, seed=1)
    other, _ = split(frame, "target", 0.2, seed=2)
    assert len(test) == 114
    assert len(train) == 455
    assert train.equals(again)
    assert not train.equals(other)
    assert abs(train.target.mean() - test.target.mean()) < 0.01


def test_train_fraction_keeps_the_same_test_rows(frame):
    full_train, full_test = split(frame, "target", 0.2, seed=3)
    small_train, small_test = split(frame, "target", 0.2, seed=3, train_fraction=0.3)
    assert small_test.equals(full_test)
    assert len(small_train) == pytest.approx(0.3 * len(full_train), abs=1)


@pytest.mark.parametrize(("test_size", "fraction"), [(0.0, 1.0), (1.0, 1.0), (0.2, 0.0), (0.2, 1.5)])
def test_bad_sizes_are_rejected(frame, test_size, fraction):
    with pytest.raises(ValueError, match="must be in"):
        split(frame, "target", test_size, seed=0, train_fraction=fraction)


def test_a_regression_target_splits_without_strata():
    diabetes = load_source("sklearn:diabetes")
    train, test = split(diabetes, "target", 0.2, seed=0, stratify=False)
    assert len(test) == 89
    assert len(train) + len(test) == len(diabetes)
    with pytest.raises(ValueError, match="least populated class"):
        split(diabetes, "target", 0.2, seed=0, stratify=True)


def test_validation_rows_come_from_the_training_share_and_never_from_the_test_rows(frame):
    rows = frame.assign(row=range(len(frame)))
    train, test = split(rows, "target", 0.2, seed=4)
    kept, validation = carve_validation(train, "target", 0.25, seed=4)
    assert set(validation.row).isdisjoint(test.row)
    assert set(validation.row).isdisjoint(kept.row)
    assert set(kept.row) | set(validation.row) == set(train.row)
    assert len(validation) == pytest.approx(0.25 * len(train), abs=1)
    assert abs(validation.target.mean() - train.target.mean()) < 0.02  # stratified
    again, _ = carve_validation(train, "target", 0.25, seed=4)
    assert again.equals(kept)
    _, unstratified = carve_validation(train, "target", 0.25, seed=4, stratify=False)
    assert len(unstratified) == len(validation)


@pytest.mark.parametrize("size", [0.0, 1.0])
def test_bad_validation_sizes_are_rejected(frame, size):
    with pytest.raises(ValueError, match="validation_size must be in"):
        carve_validation(frame, "target", size, seed=0)


def test_the_step_writes_the_rows_split_and_carve_validation_give_without_a_dataframe_of_the_table(frame, tmp_path):
    from components.split.core import write_parts

    source = tmp_path / "dataset.parquet"
    rows = frame.assign(name=[f"n{i % 7}" for i in range(len(frame))])
    rows.to_parquet(source, index=False)
    paths = (str(tmp_path / "train.parquet"), str(tmp_path / "test.parquet"), str(tmp_path / "validation.parquet"))
    counts = write_parts(str(source), "target", 0.2, 4, 1.0, paths, stratify=True, validation_size=0.25)
    train, test = split(rows, "target", 0.2, seed=4)
    kept, validation = carve_validation(train, "target", 0.25, seed=4)
    for path, expected in zip(paths, (kept, test, validation), strict=True):
        pd.testing.assert_frame_equal(pd.read_parquet(path), expected)
    assert counts == (len(kept), len(test), len(validation))
    assert write_parts(str(source), "target", 0.2, 4, 0.5, (paths[0], paths[1], ""), stratify=False)[2] == 0
    pd.testing.assert_frame_equal(pd.read_parquet(paths[1]), split(rows, "target", 0.2, 4, 0.5, stratify=False)[1])
