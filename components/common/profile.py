"""The reference profile of a training set: what "normal input" looks like for one model.

Validation compares new data against it, and the serving layer uses the same profile (saved in the
registered model's metadata) to count out-of-range values and score input drift. Keep this module free of
heavy imports: the serving hot path imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

DEFAULT_BINS = 10
# PSI floor: an empty bin on either side would make the score infinite.
PSI_EPSILON = 1e-4
# Observations added to each observed bin before PSI (Jeffreys' 1/2): keeps small windows from reading as drift.
PSI_PSEUDO_COUNT = 0.5


@dataclass(frozen=True)
class FeatureProfile:
    """Summary of one numeric feature in the reference data."""

    dtype: str
    minimum: float
    maximum: float
    mean: float
    std: float
    missing_share: float
    # Inner quantile edges; bin i holds values in (edges[i-1], edges[i]], the outer bins are open-ended.
    bin_edges: list[float] = field(default_factory=list)
    bin_shares: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class ReferenceProfile:
    """Profile of a whole dataset: its features, its target and the class balance."""

    target: str
    n_rows: int
    features: dict[str, FeatureProfile]
    class_shares: dict[str, float]

    @property
    def feature_names(self) -> list[str]:
        """Return the feature names in training order."""
        return list(self.features)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form (used for artifacts and model metadata).

        Features are a list, not a mapping: YAML writers sort mapping keys, and the feature order is the
        order the model was trained on.
        """
        data = asdict(self)
        data["features"] = [{"name": name, **values} for name, values in data["features"].items()]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Rebuild a profile written by `to_dict`."""
        features = {}
        for entry in data["features"]:
            values = dict(entry)
            name = str(values.pop("name"))
            features[name] = FeatureProfile(**values)
        return cls(
            target=str(data["target"]),
            n_rows=int(data["n_rows"]),
            features=features,
            class_shares={str(k): float(v) for k, v in data["class_shares"].items()},
        )


def bin_counts(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Return how many finite `values` fall in each bin defined by the inner `edges`."""
    finite = values[np.isfinite(values)]
    return np.bincount(np.searchsorted(edges, finite, side="left"), minlength=len(edges) + 1)


def bin_shares(values: np.ndarray, edges: Sequence[float]) -> list[float]:
    """Return the share of `values` falling in each bin defined by the inner `edges`."""
    counts = bin_counts(values, edges)
    total = counts.sum()
    return (counts / total).tolist() if total else [0.0] * len(counts)


def psi(expected: ArrayLike, counts: ArrayLike) -> Any:
    """Population stability index of observed bin `counts` vs `expected` shares, along the last axis.

    0 means identical; above 0.25 is the usual "shifted" line. Every bin the reference knows gets
    PSI_PSEUDO_COUNT extra observations first: with a bare floor, one empty bin in a window of a few dozen
    healthy rows scores about 0.7 on its own. Bins with an expected share of 0 (padding) that stay empty
    add nothing. Works on one feature (1-d) or many at once (2-d), returning a float or an array.
    """
    expected = np.asarray(expected, dtype=float)
    counts = np.asarray(counts, dtype=float)
    known = expected > 0
    smoothed = np.where(known, counts + PSI_PSEUDO_COUNT, counts)
    actual = np.maximum(smoothed / np.maximum(smoothed.sum(axis=-1, keepdims=True), 1.0), PSI_EPSILON)
    floor = np.maximum(expected, PSI_EPSILON)
    terms = np.where(known | (counts > 0), (actual - floor) * np.log(actual / floor), 0.0)
    return terms.sum(axis=-1)


def profile_feature(series: pd.Series, bins: int = DEFAULT_BINS) -> FeatureProfile:
    """Profile one numeric column; quantile edges make every reference bin about equally full."""
    values = series.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError(f"column {series.name!r} has no finite values to profile")
    quantiles = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])
    edges = sorted(set(float(q) for q in quantiles))
    return FeatureProfile(
        dtype=str(series.dtype),
        minimum=float(finite.min()),
        maximum=float(finite.max()),
        mean=float(finite.mean()),
        std=float(finite.std()),
        missing_share=float(series.isna().mean()),
        bin_edges=edges,
        bin_shares=bin_shares(finite, edges),
    )


def build_profile(frame: pd.DataFrame, target: str, bins: int = DEFAULT_BINS) -> ReferenceProfile:
    """Profile every feature column of `frame` and the class balance of `target`."""
    features = {str(name): profile_feature(frame[name], bins) for name in frame.columns if name != target}
    shares = frame[target].value_counts(normalize=True).sort_index()
    return ReferenceProfile(
        target=target,
        n_rows=len(frame),
        features=features,
        class_shares={str(k): float(v) for k, v in shares.items()},
    )
