"""The model's input columns, read from its MLflow signature, and the typed frame the model is fed.

The signature says each column's type and whether it may be missing (`required: false`); a plinth model
adds its reference profile (ranges and categories). The request schema, the published contract, the frame
built for the model and the example rows all come from this one list, so they cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature

from components.common.profile import FeatureProfile, ReferenceProfile

NUMBER_TYPES = frozenset({"double", "float"})
INTEGER_TYPES = frozenset({"long", "integer"})
SUPPORTED_TYPES = ("double", "float", "long", "integer", "boolean", "string")
# What a JSON value of each signature type becomes in Python (before the frame types it).
PYTHON_TYPES: dict[str, type] = {"double": float, "float": float, "long": int, "integer": int, "boolean": bool}
# A value this many reference spans beyond the training [min, max] is implausible, and large enough to
# overflow a scaler: it is rejected. Merely unusual values pass and are counted as out of range.
PLAUSIBLE_SPANS = 1000.0
INTEGER_BOUNDS = {"long": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1)}
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Column:
    """One input column: its signature type, whether it may be null, and its reference profile if known."""

    name: str
    type: str
    optional: bool = False
    stats: FeatureProfile | None = None

    @property
    def is_number(self) -> bool:
        """Return True for float columns (JSON integers are numbers to them)."""
        return self.type in NUMBER_TYPES

    @property
    def dtype(self) -> str:
        """Return the frame dtype: float64 for numbers and for integers that can be missing, as in training."""
        if self.is_number or (self.type in INTEGER_TYPES and self.optional):
            return "float64"
        if self.type in INTEGER_TYPES:
            return "int64"
        if self.type == "boolean" and not self.optional:
            return "bool"
        return "object"

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        """Return the inclusive range a value must lie in (None: unbounded), the same for schema and docs.

        Integers fit their signature type; a plinth model's numeric feature lies within PLAUSIBLE_SPANS
        reference spans of its training range; any other number within float32, the precision many learners
        (scikit-learn's trees, XGBoost, torch) compute in: a larger value cannot be scored.
        """
        if self.type in INTEGER_TYPES:
            low, high = INTEGER_BOUNDS[self.type]
            return low, high
        if self.is_number and self.stats is not None and self.stats.is_numeric:
            stats = self.stats
            span = max(stats.maximum - stats.minimum, abs(stats.mean), 1.0) * PLAUSIBLE_SPANS
            return stats.minimum - span, stats.maximum + span
        if self.is_number:
            return -FLOAT32_MAX, FLOAT32_MAX
        return None, None


def read_columns(signature: ModelSignature | None, profile: ReferenceProfile | None) -> list[Column]:
    """Return the signature's input columns in order, with the profile's statistics for plinth models.

    Raises:
        ValueError: no signature, tensor or unnamed inputs, a column type the service cannot take (the message
            names the column), or inputs that differ from the reference profile's features.
    """
    if signature is None or signature.inputs is None:
        raise ValueError("the model has no input signature (log it with signature=infer_signature(...))")
    inputs = signature.inputs
    if inputs.is_tensor_spec() or not inputs.has_input_names():
        raise ValueError("the signature's inputs are not named columns; serving takes one JSON object per row")
    columns = []
    for spec in inputs.inputs:
        kind = str(getattr(spec.type, "name", spec.type))
        if kind not in SUPPORTED_TYPES:
            raise ValueError(
                f"input column {spec.name!r} has type {kind}; serving takes {', '.join(SUPPORTED_TYPES)} columns"
            )
        stats = profile.features.get(str(spec.name)) if profile else None
        columns.append(Column(str(spec.name), kind, not spec.required, stats))
    if profile is not None and [c.name for c in columns] != profile.feature_names:
        raise ValueError("the signature's inputs differ from the reference profile's features")
    return columns


def plain_value(value: Any, column: Column) -> Any:
    """Return a cell (numpy scalar, NaN, pandas NA) as the JSON value the request schema takes for `column`."""
    if value is None or value is pd.NA or (isinstance(value, float | np.floating) and math.isnan(value)):
        return None
    value = value.item() if isinstance(value, np.generic) else value
    convert = PYTHON_TYPES.get(column.type, str)
    return convert(value)


class Batch:
    """Validated instances in column order: one float block (all-number models) or one typed array per column.

    The model's DataFrame is built only when asked for: an all-number plinth model is fed the block itself
    (see `predictor.FastPredictor`), and the monitor reads columns without a frame.
    """

    def __init__(self, index: pd.Index, block: np.ndarray | None, arrays: dict[str, np.ndarray] | None = None) -> None:
        self.index = index
        self.block = block
        self.arrays = arrays or {}
        self.rows = len(block) if block is not None else len(next(iter(self.arrays.values()), ()))

    def column(self, name: str) -> np.ndarray:
        """Return one column's values, typed as in the frame."""
        if self.block is not None:
            return self.block[:, self.index.get_loc(name)]
        return self.arrays[name]

    @cached_property
    def frame(self) -> pd.DataFrame:
        """Return the model's input frame, columns in signature order."""
        if self.block is not None:
            return pd.DataFrame(self.block, columns=self.index, copy=False)
        # Object columns stay objects (pandas would infer its string dtype), as `prepare_features` left them.
        columns = {
            name: pd.Series(values, dtype=object, copy=False) if values.dtype == object else values
            for name, values in self.arrays.items()
        }
        return pd.DataFrame(columns, columns=self.index, copy=False)


class FrameBuilder:
    """Turns validated instances (dicts in request order) into the typed batch the model was trained on.

    Mirrors `components.common.features.prepare_features`: numbers as float64 (null as NaN), integers that
    can be missing as float64, text and optional booleans as objects. A model whose inputs all become
    float64 gets one float block, the cheapest input there is.
    """

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = list(columns)
        self.index = pd.Index([c.name for c in self.columns])
        self.read = itemgetter(*self.index)
        self.single = len(self.columns) == 1
        self.block_only = all(c.dtype == "float64" for c in self.columns)

    def rows(self, instances: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Return each instance's values in column order."""
        if self.single:
            return [(self.read(instance),) for instance in instances]
        return [self.read(instance) for instance in instances]

    def build(self, instances: Sequence[dict[str, Any]]) -> Batch:
        """Return the typed batch of `instances`."""
        rows = self.rows(instances)
        if self.block_only:
            return Batch(self.index, np.array(rows, dtype=np.float64).reshape(len(rows), len(self.columns)))
        cells = list(zip(*rows, strict=True)) if rows else [() for _ in self.columns]
        arrays = {c.name: np.array(values, dtype=c.dtype) for c, values in zip(self.columns, cells, strict=True)}
        return Batch(self.index, None, arrays)
