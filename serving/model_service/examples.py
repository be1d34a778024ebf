"""Example instances of the served model: for the warm-up, the API docs, `make serve`'s curl line and tests.

The best example is the one the model was logged with (MLflow's `input_example`): real rows a user can
recognise. Without it, a plinth model's reference profile gives typical rows (means, extremes, frequent
categories); without either, rows are made up from the signature's types. Each source is offered in that
order; the service keeps the first whose rows pass its own request schema.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pandas as pd
from pydantic import BaseModel, ValidationError

from serving.model_service.columns import INTEGER_TYPES, NUMBER_TYPES, Column, plain_value
from serving.model_service.registry import ModelRef

Instance = dict[str, Any]
# What a made-up value of each signature type is (the model only has to answer it, not make sense of it).
SYNTHETIC_VALUES: dict[str, Any] = {
    "double": 0.0,
    "float": 0.0,
    "long": 0,
    "integer": 0,
    "boolean": False,
    "string": "",
}


def logged_example(ref: ModelRef) -> list[Instance]:
    """Return the rows of the model's saved input example (empty when there is none or it is not a table)."""
    if not ref.mlmodel.saved_input_example_info:
        return []
    with contextlib.suppress(Exception):  # a missing or unreadable example only means: use another source
        example = ref.mlmodel.load_input_example(str(ref.local_dir))
        frame = example if isinstance(example, pd.DataFrame) else pd.DataFrame(example)
        if all(c.name in frame.columns for c in ref.columns):
            records = frame.to_dict(orient="records")
            return [{c.name: plain_value(row[c.name], c) for c in ref.columns} for row in records]
    return []


def _category_value(category: str, column: Column) -> Any:
    """Return a profile category name (`category_strings` form) as a value of the column's type."""
    if column.type == "boolean":
        return category == "True"
    if column.type in INTEGER_TYPES:
        return int(float(category))
    if column.type in NUMBER_TYPES:
        return float(category)
    return category


def profile_rows(ref: ModelRef) -> list[Instance]:
    """Return typical rows from the reference profile: means, minima and maxima, frequent categories."""
    if ref.profile is None:
        return []
    rows: list[Instance] = []
    for position, statistic in enumerate(("mean", "minimum", "maximum")):
        row: Instance = {}
        for column in ref.columns:
            stats = column.stats
            assert stats is not None  # every column of a plinth model has its profile
            if stats.is_numeric:
                row[column.name] = plain_value(round(getattr(stats, statistic), 6), column)
            else:
                category = stats.categories[position % len(stats.categories)]
                row[column.name] = _category_value(category, column)
        rows.append(row)
    return rows


def synthetic_rows(ref: ModelRef) -> list[Instance]:
    """Return one row made up from the signature's types."""
    return [{c.name: SYNTHETIC_VALUES[c.type] for c in ref.columns}]


def candidates(ref: ModelRef) -> Iterator[tuple[str, list[Instance]]]:
    """Yield (source, rows) in order of preference: the logged example, the profile, the signature."""
    sources = (
        ("the model's input example", logged_example),
        ("the reference profile", profile_rows),
        ("the signature", synthetic_rows),
    )
    for source, rows_of in sources:
        rows = rows_of(ref)
        if rows:
            yield source, rows


def first_valid(ref: ModelRef, request_model: type[BaseModel]) -> tuple[str, list[Instance]]:
    """Return the first (source, rows) whose rows pass `request_model` (made-up rows always do)."""
    for source, rows in candidates(ref):
        try:
            request_model.model_validate({"instances": rows})
        except ValidationError:
            continue
        return source, rows
    raise ValueError(f"no example row of {ref.name} v{ref.version} passes its request schema")
