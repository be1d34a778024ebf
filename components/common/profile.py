"""The reference profile of a training set: what "normal input" looks like for one model.

Validation compares new data against it, and the serving layer uses the same profile (saved in the
registered model's metadata) to count out-of-range values and score input drift. Every feature is either
numeric (quantile bins) or categorical (its most frequent categories, one "other" bin for the rest); both
kinds also get a bin for missing values, so one PSI implementation scores drift, unseen categories and
a change in missingness alike. Keep this module free of heavy imports: the serving hot path imports it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from components.common.task import Task, classification_task, plain_label

DEFAULT_BINS = 10
# PSI floor: an empty bin on either side would make the score infinite.
PSI_EPSILON = 1e-4
# Observations added to each observed bin before PSI (Jeffreys' 1/2): keeps small windows from reading as drift.
PSI_PSEUDO_COUNT = 0.5
NUMERIC, CATEGORICAL = "numeric", "categorical"
# Categories kept by name in a profile; rarer ones share the "other" bin with categories never seen.
MAX_PROFILE_CATEGORIES = 50
# An integer column with at most this many distinct values is read as categorical unless declared.
MAX_INTEGER_LEVELS = 10
# How a missing categorical value is spelled once categories are strings (never a real category name).
MISSING_CATEGORY = "<missing>"
# One column's values, as a list (JSON rows, None for missing), an array or a pandas series.
Column: TypeAlias = Sequence[Any] | np.ndarray | pd.Series


@dataclass(frozen=True)
class FeatureProfile:
    """Summary of one feature in the reference data.

    Numeric features: range, moments and quantile bins. Categorical features: `categories` (as the
    strings `category_strings` makes) and their shares, plus one last share for all other categories.
    `bin_shares` count only present values; `missing_share` is the share of missing ones.
    """

    dtype: str
    minimum: float
    maximum: float
    mean: float
    std: float
    missing_share: float
    # Inner quantile edges; bin i holds values in (edges[i-1], edges[i]], the outer bins are open-ended.
    bin_edges: list[float] = field(default_factory=list)
    bin_shares: list[float] = field(default_factory=list)
    kind: str = NUMERIC
    categories: list[str] = field(default_factory=list)
    # Categorical only: more distinct values than validation's `max_categories`, so the candidates encode it
    # without one column per category (`features.py`); the validation report says how.
    high_cardinality: bool = False
    # Numeric only: missing in more than validation's `indicator_missing_share`, so the imputing candidates add a
    # missing-indicator column beside the imputed value (`features.py`); the validation report says so.
    missing_indicator: bool = False

    @property
    def is_numeric(self) -> bool:
        """Return True for a numeric feature (range and quantile bins apply)."""
        return self.kind == NUMERIC

    @property
    def optional(self) -> bool:
        """Return True when the reference data had missing values here (the signature marks it optional)."""
        return self.missing_share > 0

    @property
    def n_bins(self) -> int:
        """Return the number of drift bins: value bins (categories + other) and the missing bin."""
        return len(self.bin_shares) + 1

    def expected_shares(self) -> np.ndarray:
        """Return the reference share of every drift bin, the missing bin last."""
        present = np.asarray(self.bin_shares, dtype=float) * (1.0 - self.missing_share)
        return np.append(present, self.missing_share)

    def bin_index(self, values: Column) -> np.ndarray:
        """Return the drift bin of each value: a value bin, "other" for unseen categories, or missing."""
        if self.is_numeric:
            numbers = np.asarray(values, dtype=float)
            index = np.searchsorted(self.bin_edges, numbers, side="left")
            return np.where(np.isnan(numbers), len(self.bin_shares), index)
        lookup = {name: position for position, name in enumerate(self.categories)}
        other, missing = len(self.categories), len(self.bin_shares)
        strings = category_strings(values)
        return np.array([missing if s == MISSING_CATEGORY else lookup.get(s, other) for s in strings], dtype=np.int64)

    def drift_counts(self, values: Column) -> np.ndarray:
        """Return how many of `values` fall in each drift bin."""
        return np.bincount(self.bin_index(values), minlength=self.n_bins)


@dataclass(frozen=True)
class ReferenceProfile:
    """Profile of a whole dataset: its features, its target, the task and the class balance."""

    target: str
    n_rows: int
    features: dict[str, FeatureProfile]
    class_shares: dict[str, float]
    task: Task
    # Regression only: the target's own numeric profile (its quantile bins size the prediction histogram).
    target_profile: FeatureProfile | None = None
    # Columns of the table that are not features: missing in more than validation's `max_missing_share`
    # (name → missing share), so a later run can say why a column the champion dropped is back.
    dropped: dict[str, float] = field(default_factory=dict)

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
        data["task"] = self.task.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Rebuild a profile written by `to_dict` (profiles from before tasks existed are binary)."""
        features = {}
        for entry in data["features"]:
            values = dict(entry)
            name = str(values.pop("name"))
            features[name] = FeatureProfile(**values)
        shares = {str(k): float(v) for k, v in data["class_shares"].items()}
        task = (
            Task.from_dict(data["task"]) if "task" in data else classification_task([_legacy_label(k) for k in shares])
        )
        target_profile = data.get("target_profile")
        return cls(
            target=str(data["target"]),
            n_rows=int(data["n_rows"]),
            features=features,
            class_shares=shares,
            task=task,
            target_profile=FeatureProfile(**target_profile) if target_profile else None,
            dropped={str(k): float(v) for k, v in data.get("dropped", {}).items()},
        )


def _legacy_label(key: str) -> int | str:
    """Return a class key of an old profile as the label it was (0/1 were integers)."""
    return int(key) if key.lstrip("-").isdigit() else key


def category_strings(values: Column) -> np.ndarray:
    """Return each value as its category name: numbers without a needless ".0", missing as MISSING_CATEGORY.

    Training, validation and serving all name categories through this function, so an integer category
    sent as JSON `3` matches the `3.0` that a column with missing values holds after a CSV read.
    """
    array = np.asarray(values, dtype=object).ravel()
    return np.array([_category_name(value) for value in array], dtype=object)


def _category_name(value: Any) -> str:
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)) or value is pd.NA:
        return MISSING_CATEGORY
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | float | np.integer | np.floating):
        return format(float(value), "g") if not float(value).is_integer() else str(int(value))
    return str(value)


def column_kind(series: pd.Series, declared_categorical: bool = False) -> str:
    """Decide whether a feature is numeric or categorical.

    Declared columns, booleans, text and integer columns with at most MAX_INTEGER_LEVELS distinct values
    are categorical; other numeric columns are numeric.
    """
    if declared_categorical or pd.api.types.is_bool_dtype(series):
        return CATEGORICAL
    if not pd.api.types.is_numeric_dtype(series):
        return CATEGORICAL
    if pd.api.types.is_integer_dtype(series) and series.nunique(dropna=True) <= MAX_INTEGER_LEVELS:
        return CATEGORICAL
    return NUMERIC


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
    healthy rows scores about 0.7 on its own. Bins with an expected share of 0 (padding, or a missing bin
    of a column that was never missing) that stay empty add nothing. Works on one feature (1-d) or many at
    once (2-d), returning a float or an array.
    """
    expected = np.asarray(expected, dtype=float)
    counts = np.asarray(counts, dtype=float)
    known = expected > 0
    smoothed = np.where(known, counts + PSI_PSEUDO_COUNT, counts)
    actual = np.maximum(smoothed / np.maximum(smoothed.sum(axis=-1, keepdims=True), 1.0), PSI_EPSILON)
    floor = np.maximum(expected, PSI_EPSILON)
    terms = np.where(known | (counts > 0), (actual - floor) * np.log(actual / floor), 0.0)
    return terms.sum(axis=-1)


def feature_psi(profile: FeatureProfile, values: Column) -> float:
    """Return the PSI of `values` (any kind, missing values included) against one feature's reference."""
    return float(psi(profile.expected_shares(), profile.drift_counts(values)))


def profile_numeric(series: pd.Series, bins: int = DEFAULT_BINS) -> FeatureProfile:
    """Profile one numeric column; quantile edges make every reference bin about equally full."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
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


def category_counts(series: pd.Series) -> pd.Series:
    """Return how often each category name (`category_strings`) occurs among the present values, most first.

    Counts the raw values first and names only the distinct ones: naming every row in Python costs about a
    second per million rows and column, and a copy of the column as objects.
    """
    raw = series.value_counts(dropna=True, sort=False)
    if raw.empty:
        return raw.astype("int64")
    names = category_strings(raw.index.to_numpy())
    return raw.groupby(names, sort=False).sum().sort_values(ascending=False, kind="stable")


def profile_categorical(series: pd.Series, high_cardinality: bool = False) -> FeatureProfile:
    """Profile one categorical column: its most frequent categories and one share for all the others."""
    counts = category_counts(series)
    if counts.empty:
        raise ValueError(f"column {series.name!r} has no values to profile")
    frequency = counts / counts.sum()
    kept = frequency.head(MAX_PROFILE_CATEGORIES)
    return FeatureProfile(
        dtype=str(series.dtype),
        minimum=0.0,
        maximum=0.0,
        mean=0.0,
        std=0.0,
        missing_share=float(series.isna().mean()),
        bin_shares=[*map(float, kept), float(max(0.0, 1.0 - kept.sum()))],
        kind=CATEGORICAL,
        categories=[str(name) for name in kept.index],
        high_cardinality=high_cardinality,
    )


def profile_feature(
    series: pd.Series, kind: str = NUMERIC, bins: int = DEFAULT_BINS, high_cardinality: bool = False
) -> FeatureProfile:
    """Profile one feature column of the given kind (`high_cardinality` marks a categorical one as such)."""
    return profile_categorical(series, high_cardinality) if kind == CATEGORICAL else profile_numeric(series, bins)


def build_profile(
    frame: pd.DataFrame,
    target: str,
    task: Task | None = None,
    kinds: Mapping[str, str] | None = None,
    bins: int = DEFAULT_BINS,
    high_cardinality: Collection[str] = (),
) -> ReferenceProfile:
    """Profile every feature column of `frame`, the target and the task.

    `kinds` names each feature's kind (default: `column_kind`); `task` defaults to classification over
    the target's distinct values, which is what every profile was before tasks existed; `high_cardinality`
    names the categorical features validation found to have too many categories for one-hot columns.
    """
    kinds = kinds or {}
    task = task or classification_task(frame[target].dropna().unique())
    features = {
        str(name): profile_feature(
            frame[name], kinds.get(str(name)) or column_kind(frame[name]), bins, str(name) in high_cardinality
        )
        for name in frame.columns
        if name != target
    }
    if task.is_classification:
        # Count the labels first, then name the few distinct ones (not a Python call per row).
        counts = frame[target].value_counts(dropna=True, sort=False)
        named = counts.groupby([str(plain_label(label)) for label in counts.index]).sum()
        shares = named / named.sum()
        class_shares = {name: float(shares.get(name, 0.0)) for name in task.class_names}
        target_profile = None
    else:
        class_shares = {}
        target_profile = profile_numeric(frame[target], bins)
    return ReferenceProfile(
        target=target,
        n_rows=len(frame),
        features=features,
        class_shares=class_shares,
        task=task,
        target_profile=target_profile,
    )
