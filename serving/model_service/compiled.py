"""A fitted model's preprocessing compiled into numpy lookups, so a served batch never becomes a DataFrame.

scikit-learn's ColumnTransformer costs about 2 ms per call whatever the number of rows: it builds and checks
a DataFrame, names every category in Python and validates each step's input again. What the fitted steps
compute is small: a median per numeric column (SimpleImputer), a mean and a scale (StandardScaler), and per
categorical column a sorted list of category names that become one-hot columns, an ordinal code or target
means (OneHotEncoder, OrdinalEncoder, TargetEncoder behind `features.category_frame`). `compile_model` reads
those fitted numbers once; `CompiledModel.predict` then writes the matrix the ColumnTransformer would write,
column block by column block, straight from the batch's typed columns, and hands it to the fitted learner
(the linear model, the XGBoost booster with native categories, the torch MLP), as the pipeline does.

Each fitted step is reproduced by `compiled_steps.py`. Categories are named by `profile.category_strings`, the
one function training used, so `3`, `3.0` and `"3"` meet as they did there.

A step the compiler does not know raises `NotCompiled` naming it: the service then keeps scikit-learn's own
path (and says so), never an approximation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from components.common.modeling import predict_output
from components.common.task import Task
from serving.model_service.columns import Batch
from serving.model_service.compiled_steps import (
    CategoricalColumn,
    NotCompiled,
    NumericOp,
    NumericPart,
    categorical_columns,
    check_output_config,
    numeric_ops,
    numeric_part,
    step_name,
)

__all__ = ["CompiledFeatures", "CompiledModel", "NotCompiled", "compile_model"]

Part = NumericPart | CategoricalColumn


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
    check_output_config(transformer)
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
            raise NotCompiled(f"step {step_name(step)} on non-numeric columns {columns}")
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
        raise NotCompiled(f"{step_name(learner)} was fitted on named columns")
    first, after = steps[0], steps[1:]
    if isinstance(first, ColumnTransformer):
        parts: list[Part] = column_parts(first, columns, numbers)
    elif isinstance(first, SimpleImputer | StandardScaler | Pipeline):
        fitted = [str(name) for name in getattr(first, "feature_names_in_", [])]
        if fitted != list(columns) or not set(columns) <= set(numbers):
            raise NotCompiled(f"{step_name(first)} on columns other than the signature's numbers")
        parts = [numeric_part(columns, numeric_ops(first), columns)]
    else:
        raise NotCompiled(f"preprocessing step {step_name(first)}")
    features = CompiledFeatures(tuple(parts), tuple(op for step in after for op in numeric_ops(step)))
    expected = getattr(learner, "n_features_in_", features.width)
    if expected != features.width:
        raise NotCompiled(f"the learner takes {expected} columns; the compiled preprocessing makes {features.width}")
    return CompiledModel(features, learner, task)
