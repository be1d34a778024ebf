"""The served contract, applied to a table chunk at once: what /predict would refuse, row by row, with why.

Serving validates each JSON instance against a schema generated from the model's columns
(`serving/model_service/schema.py`, from `columns.read_columns`): each value must be of its column's signature
type (a number for `double`/`float`, an integral number for `long`/`integer`, true/false for `boolean`, text for
`string`), finite, within the column's bounds (`Column.bounds`: the plausible span around a plinth model's
training range, the integer type's range, or float32), and present unless the column is optional. The same
`Column` list and the same rules are applied here to whole Arrow columns, vectorised, so a million rows cost
milliseconds instead of a million validations. A table is typed per column, so where JSON could send `"1.5"`
for a number a table has a text column: every non-missing value of it is refused, as serving would refuse
each. A NaN in a float column is a missing value, as in training (pandas reads a gap as NaN). Extra columns
(an id, the label) are not the model's and are left out of what it sees.

Valid rows become the typed `Batch` serving's `FrameBuilder` builds from instances: numbers as float64 (missing
as NaN), integers that can be missing as float64, text and optional booleans as objects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from serving.model_service.columns import INTEGER_TYPES, Batch, Column

# Describes the value at one row position of a column (only called for rejected rows).
Describe = Callable[[int], str]


class ContractError(ValueError):
    """The table cannot be scored at all (a column the model takes is absent); one line naming the columns."""


@dataclass(frozen=True)
class Checked:
    """One chunk checked: which rows pass, why each other one is refused, and the passing rows typed."""

    valid: np.ndarray
    reasons: list[str]
    batch: Batch | None
    # Every value of every model column present, finite and within bounds (the usual chunk of numbers).
    complete: bool = False

    @property
    def rejected(self) -> int:
        """Return how many rows the contract refused."""
        return len(self.reasons)


def _kind(arrow_type: pa.DataType) -> str:
    """Return the JSON kind an Arrow type's values have: number, integer, boolean, string or null."""
    if pa.types.is_null(arrow_type):
        return "null"
    if pa.types.is_dictionary(arrow_type):
        return _kind(arrow_type.value_type)
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "number"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    return str(arrow_type)


# Which JSON kinds of values each signature type takes (an integral number is checked for integers).
ACCEPTS = {
    "double": ("number", "integer"),
    "float": ("number", "integer"),
    "long": ("integer", "number"),
    "integer": ("integer", "number"),
    "boolean": ("boolean",),
    "string": ("string",),
}
EXPECTED = {"double": "a number", "float": "a number", "long": "an integer", "integer": "an integer"}


def _numbers(values: pa.Array) -> np.ndarray:
    """Return a numeric column as float64 (missing as NaN)."""
    return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)


def _all_within(numbers: np.ndarray | None, values: pa.Array, bounds: tuple[float | None, float | None]) -> bool:
    """Return True when a float column has no null, NaN, infinite or out-of-bounds value (then no rule is broken)."""
    if numbers is None or values.null_count:
        return False
    low, high = bounds
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return (
            bool(np.isfinite(numbers).all())
            and (low is None or bool((numbers >= low).all()))
            and (high is None or bool((numbers <= high).all()))
        )
    if not len(numbers):
        return True
    # Two vectorised reductions, no mask: a NaN makes the minimum NaN, and NaN and +-inf compare False here.
    return bool(numbers.min() >= low) and bool(numbers.max() <= high)


class Contract:
    """The model's input columns, applied to table chunks."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = list(columns)
        self.index = pd.Index([c.name for c in self.columns])
        self.block_only = all(c.dtype == "float64" for c in self.columns)

    def require(self, names: Sequence[str], shown: str) -> list[str]:
        """Return the table's columns the model does not take (left out); refuse a table lacking one it does.

        Raises:
            ContractError: a model column is not in the table; the message names every missing one.
        """
        missing = [c.name for c in self.columns if c.name not in names]
        if missing:
            raise ContractError(
                f"{shown} lacks the model's input column(s) {', '.join(missing)}; "
                f"it takes {', '.join(c.name for c in self.columns)}"
            )
        taken = set(self.index)
        return [name for name in names if name not in taken]

    def _problems(
        self, column: Column, values: pa.Array, numbers_of: dict[str, np.ndarray], clean: list[str]
    ) -> list[tuple[np.ndarray, Describe]]:
        """Return (rows refused, why) for each rule one column's values break; keep its numbers in `numbers_of`.

        A float column whose every value is present, finite and within bounds is named in `clean`.
        """
        name, kind = column.name, _kind(values.type)
        if pa.types.is_dictionary(values.type):
            values = pc.cast(values, values.type.value_type)
        numbers = _numbers(values) if kind in ("number", "integer") else None
        if numbers is not None and column.dtype == "float64":
            numbers_of[column.name] = numbers
        if kind == "number" and column.type in ("double", "float") and _all_within(numbers, values, column.bounds):
            clean.append(name)
            return []  # the usual chunk: every value present, finite and in bounds, found in two passes
        missing = values.is_null().to_numpy(zero_copy_only=False)
        if numbers is not None and kind == "number":
            missing = missing | np.isnan(numbers)
        found: list[tuple[np.ndarray, Describe]] = []
        if not column.optional and missing.any():
            found.append((missing, lambda _: f"{name}: missing, but the column is required"))
        present = ~missing
        if kind not in ACCEPTS[column.type] and kind != "null":
            expected = EXPECTED.get(column.type, f"a {column.type}")
            found.append((present, lambda _: f"{name}: expected {expected}, the table's column is {values.type}"))
            return found
        if numbers is None:
            return found
        shown = numbers

        def value(row: int) -> str:
            return f"{shown[row]:g}"

        infinite = present & np.isinf(numbers)
        if infinite.any():
            found.append((infinite, lambda row: f"{name}: {value(row)} is not a finite number"))
        finite = present & ~infinite
        if column.type in INTEGER_TYPES and kind == "number":
            fractional = finite & (np.floor(numbers) != numbers)
            if fractional.any():
                found.append((fractional, lambda row: f"{name}: {value(row)} is not an integer"))
        low, high = column.bounds
        if low is not None and high is not None:
            if kind == "integer" and column.type in INTEGER_TYPES:  # exact: float64 rounds large integers
                outside = present & ~pc.fill_null(
                    pc.and_(pc.greater_equal(values, int(low)), pc.less_equal(values, int(high))), True
                ).to_numpy(zero_copy_only=False)
            else:
                outside = finite & ((numbers < low) | (numbers > high))
            if outside.any():
                span = f"[{low:.6g}, {high:.6g}]"
                found.append((outside, lambda row: f"{name}: {value(row)} is outside {span}"))
        return found

    def check(self, chunk: pa.RecordBatch | pa.Table) -> Checked:
        """Check every row of `chunk`; return the mask of valid rows, each refused row's reasons, and the batch."""
        rows = chunk.num_rows
        valid = np.ones(rows, dtype=bool)
        problems: list[tuple[np.ndarray, Describe]] = []
        numbers_of: dict[str, np.ndarray] = {}
        clean: list[str] = []
        for column in self.columns:
            for refused, describe in self._problems(column, chunk.column(column.name), numbers_of, clean):
                problems.append((refused, describe))
                valid &= ~refused
        reasons = [
            "; ".join(describe(int(row)) for refused, describe in problems if refused[row])
            for row in np.flatnonzero(~valid)
        ]
        every = bool(valid.all())
        passing = chunk if every else chunk.filter(pa.array(valid))
        known = numbers_of if every else {name: numbers[valid] for name, numbers in numbers_of.items()}
        batch = self.typed(passing, known) if passing.num_rows else None
        return Checked(valid, reasons, batch, complete=len(clean) == len(self.columns))

    def typed(self, chunk: pa.RecordBatch | pa.Table, numbers_of: dict[str, np.ndarray] | None = None) -> Batch:
        """Return valid rows as the typed batch the model was trained on (serving's `FrameBuilder` types).

        `numbers_of` holds float64 columns already converted (by `check`), reused instead of converted again.
        """
        numbers_of = numbers_of or {}
        if self.block_only:  # filled column by column (Fortran order): each column is one contiguous write
            block = np.empty((chunk.num_rows, len(self.columns)), dtype=np.float64, order="F")
            for position, column in enumerate(self.columns):
                found = numbers_of.get(column.name)
                block[:, position] = found if found is not None else _numbers(chunk.column(column.name))
            return Batch(self.index, block)
        arrays: dict[str, np.ndarray] = {}
        for column in self.columns:
            if column.name in numbers_of:
                arrays[column.name] = numbers_of[column.name]
                continue
            values = chunk.column(column.name)
            if pa.types.is_dictionary(values.type):
                values = pc.cast(values, values.type.value_type)
            if column.dtype == "object" and values.null_count == len(values):  # a wrong-kind column's gaps
                arrays[column.name] = np.full(len(values), None, dtype=object)
            elif column.dtype == "float64":
                arrays[column.name] = _numbers(values)
            elif column.dtype == "int64":
                arrays[column.name] = pc.cast(values, pa.int64()).to_numpy(zero_copy_only=False)
            elif column.dtype == "bool":
                arrays[column.name] = values.to_numpy(zero_copy_only=False).astype(bool)
            else:
                arrays[column.name] = np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)
        return Batch(self.index, None, arrays)
