"""The table contract refuses exactly what /predict's request schema refuses, row by row, naming the column."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from components.common.profile import FeatureProfile
from components.score.check import Contract, ContractError
from serving.model_service.columns import Column
from serving.model_service.schema import request_model

AGE = FeatureProfile("float64", 18.0, 90.0, 50.0, 10.0, 0.0)
COLUMNS = [
    Column("age", "double", False, AGE),
    Column("income", "double", True),
    Column("calls", "long", False),
    Column("plan", "string", True),
    Column("has_card", "boolean", True),
]
TABLE = pa.table(
    {
        "age": [30.0, float("nan"), 1e9, float("inf"), 40.0, 41.0, 42.0, 43.0],
        "income": [1.0, 2.0, None, 3.0, float("nan"), 4.0, 5.0, 6.0],
        "calls": [1.0, 2.0, 3.0, 4.0, 2.5, 5.0, None, 7.0],
        "plan": ["a", None, "b", "c", "d", "e", "f", "g"],
        "has_card": [True, None, False, True, True, False, True, None],
        "customer": list(range(8)),  # not the model's: left out
    }
)


def served_verdict(row: dict) -> bool:
    """Whether /predict's request model accepts `row` as one instance (NaN is how a table spells a gap)."""
    instance = {c.name: None if isinstance(row[c.name], float) and math.isnan(row[c.name]) else row[c.name]
                for c in COLUMNS}  # fmt: skip
    try:
        request_model(COLUMNS, 10).model_validate({"instances": [instance]})
    except ValidationError:
        return False
    return True


def test_every_row_gets_the_verdict_the_model_service_gives_it():
    checked = Contract(COLUMNS).check(TABLE)
    low, high = COLUMNS[0].bounds
    expected = [served_verdict(row) for row in TABLE.to_pylist()]
    assert checked.valid.tolist() == expected
    assert expected == [True, False, False, False, False, True, False, True]  # the table covers both outcomes
    assert checked.reasons == [
        "age: missing, but the column is required",
        f"age: 1e+09 is outside [{low:.6g}, {high:.6g}]",
        "age: inf is not a finite number",
        "calls: 2.5 is not an integer",
        "calls: missing, but the column is required",
    ]


def test_valid_rows_are_typed_as_the_service_types_them():
    batch = Contract(COLUMNS).check(TABLE).batch
    assert batch is not None
    assert batch.rows == 3
    assert batch.column("calls").dtype == np.int64
    assert batch.column("plan").tolist() == ["a", "e", "g"]
    assert batch.column("has_card").tolist() == [True, False, None]
    assert batch.frame.columns.tolist() == ["age", "income", "calls", "plan", "has_card"]


def test_a_column_of_another_type_refuses_its_present_values_and_keeps_its_gaps():
    table = TABLE.set_column(3, "plan", pa.array([1, None, 3, 4, 5, 6, 7, 8]))
    checked = Contract(COLUMNS).check(table)
    assert checked.valid.tolist() == [False] * 8
    assert "plan: expected a string, the table's column is int64" in checked.reasons[0]
    assert checked.reasons[1] == "age: missing, but the column is required"  # its plan is a gap: no complaint


def test_an_all_number_model_gets_one_float_block():
    columns = [Column("x", "double"), Column("y", "double", True)]
    checked = Contract(columns).check(pa.table({"x": [1, 2], "y": [None, 0.5]}))
    batch = checked.batch
    assert batch is not None
    assert not checked.complete  # a gap: the learner's own finite check stays on
    assert Contract(columns).check(pa.table({"x": [1.0, 2.0], "y": [0.25, 0.5]})).complete
    assert batch.block is not None
    assert np.isnan(batch.block[0, 1])
    assert batch.block[1].tolist() == [2.0, 0.5]


def test_a_table_without_a_model_column_is_refused_naming_it():
    with pytest.raises(ContractError, match=r"^t.parquet lacks the model's input column\(s\) calls, has_card;"):
        Contract(COLUMNS).require(["age", "income", "plan", "customer"], "t.parquet")
    assert Contract(COLUMNS).require(TABLE.column_names, "t") == ["customer"]
