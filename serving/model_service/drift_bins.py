"""The reference profile's drift bins compiled once per model, so a request is binned without naming its values.

`FeatureProfile.bin_index` is the definition: numbers by the profile's quantile edges, categories by their
name (`category_strings`) among the profile's categories, "other" for the rest, then a missing bin. On the
request path it cost ~20 µs per categorical feature for one row (a lookup dict built per call, every value
named and boxed, pandas' null check beside it). Here each categorical feature's categories become, once, a
dict from the value as the typed batch holds it (text as it is; booleans; numbers through a dict of the
categories that are numbers) to its bin, and every numeric feature's edges one padded array, as `compiled.py`
does for the model's preprocessing. A value the dicts do not hold is named as `bin_index` names it, so the
bins are `bin_index`'s for every value (tests/test_drift_bins.py); nulls are counted in the same pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from components.common.profile import MISSING_CATEGORY, FeatureProfile, category_strings


def _name(value: object) -> str:
    """Return the category name `bin_index` gives one value (the slow path: values the dicts do not hold)."""
    return str(category_strings(np.array([value], dtype=object))[0])


@dataclass(frozen=True)
class CategoryBins:
    """One categorical feature: its categories' bins by name, by boolean and by number; "other"; missing."""

    names: dict[str, int]
    numbers: dict[float, int]
    other: int
    missing: int

    @classmethod
    def of(cls, stats: FeatureProfile) -> CategoryBins:
        """Compile a categorical feature's profile (`bin_index`'s lookup, built once)."""
        names = {name: position for position, name in enumerate(stats.categories)}
        names[MISSING_CATEGORY] = len(stats.bin_shares)  # `bin_index` reads that name as missing, text included
        numbers: dict[float, int] = {}
        for name, position in names.items():
            try:
                number = float(name)
            except ValueError:
                continue
            if _name(number) == name:  # only where the number is named so: "1e+06" is not what 1e6 is named
                numbers[number] = position
        return cls(names, numbers, len(stats.categories), len(stats.bin_shares))

    def bins(self, values: np.ndarray) -> tuple[list[int], int]:
        """Return each value's drift bin and how many values are null (None or NaN, as pandas counts them)."""
        names, numbers, other, missing = self.names, self.numbers, self.other, self.missing
        out: list[int] = []
        nulls = 0
        for cell in values.tolist():
            kind = type(cell)
            if kind is str:
                out.append(names.get(cell, other))
            elif cell is None or (kind is float and cell != cell):
                out.append(missing)
                nulls += 1
            elif kind is bool:
                out.append(names.get("True" if cell else "False", other))
            else:
                found = numbers.get(cell) if kind is int or kind is float else None
                if found is None:
                    name = _name(cell)
                    found = names.get(name, other)
                    nulls += name == MISSING_CATEGORY  # pd.NA, a numpy NaN in an object column
                out.append(found)
        return out, nulls


@dataclass(frozen=True)
class NumericBins:
    """Every numeric feature at once: inner edges padded with +inf, reference ranges, missing bins."""

    edges: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    missing: np.ndarray

    @classmethod
    def of(cls, stats: Sequence[FeatureProfile]) -> NumericBins:
        """Compile the numeric features' profiles (in the order the batch's values will come)."""
        width = max((len(s.bin_edges) for s in stats), default=0)
        edges = np.full((len(stats), width), np.inf)
        for row, s in enumerate(stats):
            edges[row, : len(s.bin_edges)] = s.bin_edges
        return cls(
            edges,
            np.array([s.minimum for s in stats], dtype=np.float64),
            np.array([s.maximum for s in stats], dtype=np.float64),
            np.array([len(s.bin_shares) for s in stats], dtype=np.int64),
        )

    def bins(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return the (rows, features) bins of float `values`, and per feature its out-of-range and null counts.

        Counting the edges below a value is `searchsorted(edges, value, side="left")`: bin i holds values in
        (edges[i-1], edges[i]].
        """
        nan = np.isnan(values)
        outside = ((values < self.minimum) | (values > self.maximum)).sum(axis=0)
        bins = (values[:, :, None] > self.edges[None, :, :]).sum(axis=2)
        return np.where(nan, self.missing, bins), outside, nan.sum(axis=0)
