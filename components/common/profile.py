"""The reference profile of a training set: what "normal input" looks like for one model.

Validation compares new data against it, and the serving layer uses the same profile (saved in the
registered model's metadata) to count out-of-range values and score input drift. Keep this module free of
heavy imports: the serving hot path imports it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_BINS = 10
# PSI smoothing: an empty bin on either side would make the score infinite.
PSI_EPSILON = 1e-4


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


def bin_shares(values: np.ndarray, edges: Sequence[float]) -> list[float]:
    """Return the share of `values` falling in each bin defined by the inner `edges`."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [0.0] * (len(edges) + 1)
    counts = np.bincount(np.searchsorted(edges, finite, side="left"), minlength=len(edges) + 1)
    return (counts / finite.size).tolist()


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index between two binned distributions (0 = identical, > 0.25 = shifted)."""
    score = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, PSI_EPSILON), max(a, PSI_EPSILON)
        score += (a - e) * math.log(a / e)
    return score


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
