"""The fitted steps that `compiled.py` reproduces, each as numpy: numeric steps and categorical columns.

Numeric steps (SimpleImputer, with or without missing indicators; StandardScaler; passthrough) become
functions on a float64 block, in the order the pipeline runs them. A categorical column behind
`features.category_frame` becomes a dict (category name -> row) and a table whose row is what that category
becomes under its fitted encoder (OneHotEncoder: a one-hot row; OrdinalEncoder: its code; TargetEncoder: its
target means, one per class for multiclass), the last row what an unseen category becomes. Anything else
raises `NotCompiled`, naming the step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder

from components.common.features import category_frame
from components.common.profile import category_strings
from serving.model_service.columns import Batch

# One fitted numeric step on a (rows, columns) float64 block: the block it returns (the same one, changed in
# place, or a wider one), and how many columns it adds.
NumericOp = tuple[Callable[[np.ndarray], np.ndarray], int]


class NotCompiled(Exception):
    """The fitted model holds a step (or a setting of one) that the compiler does not reproduce exactly."""


def step_name(step: Any) -> str:
    """Return how a message names a step: its class, or the string scikit-learn takes for it."""
    return step if isinstance(step, str) else type(step).__name__


def check_output_config(step: Any) -> None:
    """Refuse a step set to answer DataFrames (`set_output`): the learner would then have seen column names."""
    if (getattr(step, "_sklearn_output_config", None) or {}).get("transform", "default") != "default":
        raise NotCompiled(f"{step_name(step)} answers {step._sklearn_output_config['transform']} output")


def _imputer(step: SimpleImputer) -> NumericOp:
    missing, fill = step.missing_values, np.asarray(step.statistics_, dtype=np.float64)
    if not (isinstance(missing, float) and math.isnan(missing)) or not np.isfinite(fill).all():
        raise NotCompiled("SimpleImputer with a missing marker other than NaN, or a column empty in training")
    indicated = step.indicator_.features_ if step.add_indicator else None

    def impute(block: np.ndarray) -> np.ndarray:  # as SimpleImputer.transform: the indicator reads the input
        if indicated is None and not np.isnan(np.add.reduce(block, axis=None)):
            return block  # no NaN (a NaN makes the sum NaN): one pass instead of a mask of the whole block
        missing = np.isnan(block)
        flags = missing[:, indicated] if indicated is not None else None
        if missing.any():
            np.copyto(block, np.broadcast_to(fill, block.shape), where=missing)
        return block if flags is None else np.hstack((block, flags))

    return impute, 0 if indicated is None else len(indicated)


def _scaler(step: StandardScaler) -> NumericOp:
    mean = step.mean_ if step.with_mean else None
    scale = step.scale_ if step.with_std else None

    def standardise(block: np.ndarray) -> np.ndarray:  # as StandardScaler.transform: subtract, then divide
        if mean is not None:
            block -= mean
        if scale is not None:
            block /= scale
        return block

    return standardise, 0


def _identity(block: np.ndarray) -> np.ndarray:
    return block


def numeric_ops(step: Any) -> list[NumericOp]:
    """Return the in-place operations of a numeric step (imputer, scaler, their pipeline, passthrough)."""
    if step is None or step == "passthrough":
        return []
    check_output_config(step)
    if isinstance(step, Pipeline):
        return [op for _, inner in step.steps for op in numeric_ops(inner)]
    if isinstance(step, SimpleImputer):
        return [_imputer(step)]
    if isinstance(step, StandardScaler):
        return [_scaler(step)]
    if isinstance(step, FunctionTransformer) and step.func is None and not step.validate:
        return [(_identity, 0)]  # what a fitted ColumnTransformer holds for "passthrough"
    raise NotCompiled(f"numeric step {step_name(step)}")


@dataclass(frozen=True)
class NumericPart:
    """Numeric columns in, the same columns out after the fitted imputer/scaler steps."""

    columns: tuple[str, ...]
    positions: tuple[int, ...]  # the columns' positions in the signature (a float block's columns)
    ops: tuple[NumericOp, ...]

    @property
    def width(self) -> int:
        """Return the number of output columns (missing indicators add theirs)."""
        return len(self.columns) + sum(added for _, added in self.ops)

    def write(self, batch: Batch, out: np.ndarray) -> None:
        """Write the part's output block into `out` (rows, width).

        Without added columns the steps run in place on `out`, filled by one copy of the batch's columns (a
        gather and then a copy into `out` cost the batch scoring step ~15 % of its loop); the signature's columns
        in order (the usual case) are copied as a slice, which numpy copies about twice as fast as a gather.
        """
        count = len(self.columns)
        block = out if out.shape[1] == count else np.empty((batch.rows, count), dtype=np.float64)
        first = self.positions[0] if self.positions else 0
        if batch.block is None:
            for position, name in enumerate(self.columns):
                block[:, position] = batch.column(name)
        elif self.positions == tuple(range(first, first + count)):
            block[...] = batch.block[:, first : first + count]
        else:
            block[...] = batch.block[:, self.positions]
        for op, _ in self.ops:
            block = op(block)
        if block is not out:  # a step added columns (missing indicators): the wider block is copied in
            out[...] = block


@dataclass(frozen=True)
class CategoricalColumn:
    """One categorical column: category name -> row of `table`; the last row is what an unseen one becomes."""

    name: str
    rows: dict[str, int]
    table: np.ndarray

    @property
    def width(self) -> int:
        """Return the number of output columns (one-hot: one per category; ordinal: one; target: per class)."""
        return int(self.table.shape[1])

    def codes(self, values: np.ndarray) -> np.ndarray:
        """Return each value's table row; text is looked up as it is, anything else by its category name."""
        rows, unseen = self.rows, len(self.table) - 1
        cells = values.tolist()
        if values.dtype == object and all(type(cell) is str for cell in cells):
            return np.fromiter((rows.get(cell, unseen) for cell in cells), dtype=np.intp, count=len(cells))
        names = category_strings(values).tolist()
        return np.fromiter((rows.get(name, unseen) for name in names), dtype=np.intp, count=len(names))

    def write(self, batch: Batch, out: np.ndarray) -> None:
        """Write this column's encoded block into `out` (rows, width)."""
        np.take(self.table, self.codes(batch.column(self.name)), axis=0, out=out)


def _tables(encoder: Any) -> list[np.ndarray]:
    """Return per input column of a fitted encoder the table of its categories' outputs plus an unseen row."""
    categories = [len(names) for names in encoder.categories_]
    if getattr(encoder, "_infrequent_enabled", False):
        raise NotCompiled(f"{step_name(encoder)} with infrequent categories")
    if isinstance(encoder, OneHotEncoder):
        if encoder.drop_idx_ is not None or encoder.handle_unknown == "error":
            raise NotCompiled("OneHotEncoder with dropped columns or handle_unknown='error'")
        return [np.vstack([np.eye(size), np.zeros((1, size))]) for size in categories]
    if isinstance(encoder, OrdinalEncoder):
        if encoder.handle_unknown != "use_encoded_value" or np.dtype(encoder.dtype).kind != "f":
            raise NotCompiled("OrdinalEncoder that refuses unseen categories or answers integers")
        unknown = float(encoder.unknown_value)
        return [np.append(np.arange(size, dtype=np.float64), unknown).reshape(-1, 1) for size in categories]
    if isinstance(encoder, TargetEncoder):
        means = np.atleast_1d(np.asarray(encoder.target_mean_, dtype=np.float64))
        per = len(means) if encoder.target_type_ == "multiclass" else 1
        encodings = encoder.encodings_
        return [
            np.vstack([np.column_stack([encodings[column * per + k] for k in range(per)]), means.reshape(1, per)])
            for column in range(len(categories))
        ]
    raise NotCompiled(f"categorical encoder {step_name(encoder)}")


def categorical_columns(step: Pipeline, columns: Sequence[str]) -> list[CategoricalColumn]:
    """Return the compiled columns of plinth's categorical step: `category_frame`, then one fitted encoder."""
    steps = [inner for _, inner in step.steps]
    for inner in steps:
        check_output_config(inner)
    if not (
        len(steps) == 2
        and isinstance(steps[0], FunctionTransformer)
        and steps[0].func is category_frame
        and not steps[0].kw_args
    ):
        raise NotCompiled(f"categorical step {' -> '.join(step_name(s) for s in steps)}")
    encoder = steps[1]
    return [
        CategoricalColumn(name, {str(category): row for row, category in enumerate(names)}, table)
        for name, names, table in zip(columns, encoder.categories_, _tables(encoder), strict=True)
    ]


def numeric_part(columns: Sequence[str], ops: Sequence[NumericOp], signature: Sequence[str]) -> NumericPart:
    """Return a numeric part reading `columns` (by name, or by position from a float block)."""
    return NumericPart(tuple(columns), tuple(signature.index(name) for name in columns), tuple(ops))
