"""A fitted model's preprocessing compiled into numpy lookups, so a served batch never becomes a DataFrame.

scikit-learn's ColumnTransformer costs about 2 ms per call whatever the number of rows: it builds and checks
a DataFrame, names every category in Python and validates each step's input again. What the fitted steps
compute is small: a median per numeric column (SimpleImputer), a mean and a scale (StandardScaler), and per
categorical column a sorted list of category names that become one-hot columns, an ordinal code or target
means (OneHotEncoder, OrdinalEncoder, TargetEncoder behind `features.category_frame`). `compile_model` reads
those fitted numbers once; `CompiledModel.predict` then writes the matrix the ColumnTransformer would write,
column block by column block, straight from the batch's typed columns, and hands it to the fitted learner
(the linear model, the XGBoost booster with native categories, the torch MLP), as the pipeline does.

Each categorical column becomes a dict (category name -> row) and a table whose row is what that category
becomes (one-hot row, code, target means), its last row what an unseen category becomes. Names are made by
`profile.category_strings`, the one function training used, so `3`, `3.0` and `"3"` meet as they did there.

A step the compiler does not know raises `NotCompiled` naming it: the service then keeps scikit-learn's own
path (and says so), never an approximation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder

from components.common.features import category_frame
from components.common.modeling import predict_output
from components.common.profile import category_strings
from components.common.task import Task
from serving.model_service.columns import Batch

# One fitted numeric step on a (rows, columns) float64 block: the block it returns (the same one, changed in
# place, or a wider one), and how many columns it adds.
NumericOp = tuple[Callable[[np.ndarray], np.ndarray], int]


class NotCompiled(Exception):
    """The fitted model holds a step (or a setting of one) that the compiler does not reproduce exactly."""


def _step_name(step: Any) -> str:
    return step if isinstance(step, str) else type(step).__name__


def _check_output_config(step: Any) -> None:
    """Refuse a step set to answer DataFrames (`set_output`): the learner would then have seen column names."""
    if (getattr(step, "_sklearn_output_config", None) or {}).get("transform", "default") != "default":
        raise NotCompiled(f"{_step_name(step)} answers {step._sklearn_output_config['transform']} output")


def _imputer(step: SimpleImputer) -> NumericOp:
    missing, fill = step.missing_values, np.asarray(step.statistics_, dtype=np.float64)
    if not (isinstance(missing, float) and math.isnan(missing)) or not np.isfinite(fill).all():
        raise NotCompiled("SimpleImputer with a missing marker other than NaN, or a column empty in training")
    indicated = step.indicator_.features_ if step.add_indicator else None

    def impute(block: np.ndarray) -> np.ndarray:  # as SimpleImputer.transform: the indicator reads the input
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
    _check_output_config(step)
    if isinstance(step, Pipeline):
        return [op for _, inner in step.steps for op in numeric_ops(inner)]
    if isinstance(step, SimpleImputer):
        return [_imputer(step)]
    if isinstance(step, StandardScaler):
        return [_scaler(step)]
    if isinstance(step, FunctionTransformer) and step.func is None and not step.validate:
        return [(_identity, 0)]  # what a fitted ColumnTransformer holds for "passthrough"
    raise NotCompiled(f"numeric step {_step_name(step)}")


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
        """Write the part's output block into `out` (rows, width)."""
        if batch.block is not None:
            block = batch.block[:, self.positions]
        else:
            block = np.empty((batch.rows, len(self.columns)), dtype=np.float64)
            for position, name in enumerate(self.columns):
                block[:, position] = batch.column(name)
        for op, _ in self.ops:
            block = op(block)
        out[:] = block


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
        raise NotCompiled(f"{_step_name(encoder)} with infrequent categories")
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
    raise NotCompiled(f"categorical encoder {_step_name(encoder)}")


def categorical_columns(step: Pipeline, columns: Sequence[str]) -> list[CategoricalColumn]:
    """Return the compiled columns of plinth's categorical step: `category_frame`, then one fitted encoder."""
    steps = [inner for _, inner in step.steps]
    for inner in steps:
        _check_output_config(inner)
    if not (
        len(steps) == 2
        and isinstance(steps[0], FunctionTransformer)
        and steps[0].func is category_frame
        and not steps[0].kw_args
    ):
        raise NotCompiled(f"categorical step {' -> '.join(_step_name(s) for s in steps)}")
    encoder = steps[1]
    return [
        CategoricalColumn(name, {str(category): row for row, category in enumerate(names)}, table)
        for name, names, table in zip(columns, encoder.categories_, _tables(encoder), strict=True)
    ]


Part = NumericPart | CategoricalColumn


def numeric_part(columns: Sequence[str], ops: Sequence[NumericOp], signature: Sequence[str]) -> NumericPart:
    """Return a numeric part reading `columns` (by name, or by position from a float block)."""
    return NumericPart(tuple(columns), tuple(signature.index(name) for name in columns), tuple(ops))


def _selected(transformer: ColumnTransformer, selection: Any) -> list[str]:
    """Return a transformer's input columns by name (the remainder's come as positions)."""
    names = list(np.atleast_1d(np.asarray(selection, dtype=object))) if selection is not None else []
    if all(isinstance(name, str) for name in names):
        return [str(name) for name in names]
    known = getattr(transformer, "feature_names_in_", None)
    if known is not None and all(isinstance(name, int | np.integer) for name in names):
        return [str(known[int(position)]) for position in names]
    raise NotCompiled(f"a ColumnTransformer column selection {selection!r}")


def column_parts(transformer: ColumnTransformer, signature: Sequence[str], numbers: Sequence[str]) -> list[Part]:
    """Return the parts of a fitted ColumnTransformer in its output order (dropped and empty ones skipped)."""
    _check_output_config(transformer)
    if transformer.transformer_weights:
        raise NotCompiled("a ColumnTransformer with transformer weights")
    parts: list[Part] = []
    for _, step, selection in transformer.transformers_:
        columns = _selected(transformer, selection)
        if step == "drop" or not columns:
            continue
        if isinstance(step, Pipeline) and step.steps and isinstance(step.steps[0][1], FunctionTransformer):
            parts.extend(categorical_columns(step, columns))
            continue
        if not set(columns) <= set(numbers):
            raise NotCompiled(f"step {_step_name(step)} on non-numeric columns {columns}")
        parts.append(numeric_part(columns, numeric_ops(step), signature))
    return parts


@dataclass(frozen=True)
class CompiledFeatures:
    """The compiled preprocessing: parts writing side by side, then whole-matrix numeric steps."""

    parts: tuple[Part, ...]
    after: tuple[NumericOp, ...] = ()

    @property
    def width(self) -> int:
        """Return the number of columns the learner takes."""
        return sum(part.width for part in self.parts) + sum(added for _, added in self.after)

    def transform(self, batch: Batch) -> np.ndarray:
        """Return the float64 matrix the fitted preprocessing makes of `batch` (dense)."""
        out = np.empty((batch.rows, sum(part.width for part in self.parts)), dtype=np.float64)
        start = 0
        for part in self.parts:
            part.write(batch, out[:, start : start + part.width])
            start += part.width
        for op, _ in self.after:
            out = op(out)
        return out


@dataclass(frozen=True)
class CompiledModel:
    """A fitted pipeline as compiled preprocessing in front of its own fitted learner."""

    features: CompiledFeatures
    learner: Any
    task: Task

    def predict(self, batch: Batch) -> np.ndarray:
        """Return what the pipeline's `predict_proba` (classification) or `predict` (regression) answers."""
        return predict_output(self.learner, self.task, self.features.transform(batch))


def compile_model(model: Any, columns: Sequence[str], numbers: Sequence[str], task: Task) -> CompiledModel | None:
    """Compile `model`'s preprocessing for input `columns` (`numbers`: those typed as numbers in the batch).

    Returns None for a bare learner (nothing to compile).

    Raises:
        NotCompiled: a step, or a setting of one, that the compiler does not reproduce exactly; names it.
    """
    if not isinstance(model, Pipeline):
        return None
    columns = list(columns)
    steps = [step for _, step in model.steps[:-1] if step is not None and step != "passthrough"]
    learner = model.steps[-1][1]
    if not steps:
        return None
    if hasattr(learner, "feature_names_in_"):
        raise NotCompiled(f"{_step_name(learner)} was fitted on named columns")
    first, after = steps[0], steps[1:]
    if isinstance(first, ColumnTransformer):
        parts: list[Part] = column_parts(first, columns, numbers)
    elif isinstance(first, SimpleImputer | StandardScaler | Pipeline):
        fitted = [str(name) for name in getattr(first, "feature_names_in_", [])]
        if fitted != list(columns) or not set(columns) <= set(numbers):
            raise NotCompiled(f"{_step_name(first)} on columns other than the signature's numbers")
        parts = [numeric_part(columns, numeric_ops(first), columns)]
    else:
        raise NotCompiled(f"preprocessing step {_step_name(first)}")
    features = CompiledFeatures(tuple(parts), tuple(op for step in after for op in numeric_ops(step)))
    expected = getattr(learner, "n_features_in_", features.width)
    if expected != features.width:
        raise NotCompiled(f"the learner takes {expected} columns; the compiled preprocessing makes {features.width}")
    return CompiledModel(features, learner, task)
