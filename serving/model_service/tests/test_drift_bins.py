"""The compiled drift bins (`drift_bins.py`) are `FeatureProfile.bin_index`'s, for every kind of feature and value.

`bin_index` is the definition the training-side validation and the reference profile use; the input monitor's
compiled lookups must give the same bin for each value the typed batch can hold (text, booleans, numbers, nulls
of every spelling, unseen categories) and count the nulls pandas counts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from prometheus_client import REGISTRY

from components.common import profile as reference
from components.common.features import prepare_features
from components.common.profile import MISSING_CATEGORY, FeatureProfile
from components.ingest.core import load_source
from serving.model_service.columns import Column, FrameBuilder
from serving.model_service.drift import InputMonitor
from serving.model_service.drift_bins import CategoryBins, NumericBins


def categorical(*categories: str) -> FeatureProfile:
    shares = [1 / (len(categories) + 1)] * (len(categories) + 1)  # each category, then "other"
    return FeatureProfile("object", 0, 0, 0, 0, 0.1, [], shares, reference.CATEGORICAL, list(categories))


def numeric(edges: list[float], minimum: float, maximum: float) -> FeatureProfile:
    shares = [1 / (len(edges) + 1)] * (len(edges) + 1)
    return FeatureProfile("float64", minimum, maximum, 0, 1, 0.1, edges, shares)


TEXT = categorical("basic", "plus", "pro")
BOOLEAN = categorical("False", "True")
# Integer levels (a column with nulls holds them as floats), a fraction, and a name no number is given.
LEVELS = categorical("0", "1", "2", "3", "2.5", "1e+06", "inf")
CASES = {
    "text, nulls of each spelling, unseen, the missing name": (
        TEXT,
        np.array(["plus", None, np.nan, np.float64("nan"), pd.NA, "zzz", MISSING_CATEGORY, "pro", ""], dtype=object),
    ),
    "text that is not str": (TEXT, np.array([np.str_("basic"), b"plus", 3, 2.0, True], dtype=object)),
    "optional booleans": (BOOLEAN, np.array([True, False, None, np.bool_(True), np.nan, 1, 0.0], dtype=object)),
    "a boolean column": (BOOLEAN, np.array([True, False, True])),
    "levels as floats": (
        LEVELS,
        np.array([0.0, 1.0, -0.0, 3.0, 2.5, np.nan, 7.0, 1.0000001, 1e6, np.inf, -np.inf, 2.50000001]),
    ),
    "levels as integers": (LEVELS, np.array([0, 1, 2, 3, 4, 1_000_000, 10**15], dtype=np.int64)),
    "levels as objects": (
        LEVELS,
        np.array([1, 2.0, "3", "2.5", np.int64(2), np.float64(3.0), True, None, 10**20 + 1, "1e+06"], dtype=object),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_category_bins_are_bin_index_and_nulls_are_pandas(case: str) -> None:
    stats, values = CASES[case]
    bins, nulls = CategoryBins.of(stats).bins(values)
    assert bins == stats.bin_index(values).tolist()
    assert nulls == int(pd.isna(values).sum())


def test_numeric_bins_are_bin_index_with_ranges_and_nulls() -> None:
    features = [numeric([1.0, 2.0, 3.0], 0.0, 4.0), numeric([10.0], -5.0, 20.0)]
    values = np.array([[0.5, -6.0], [1.0, 10.0], [2.5, np.nan], [np.nan, 10.5], [3.0, 25.0], [9.0, -np.inf]])
    bins, outside, nulls = NumericBins.of(features).bins(values)
    for column, stats in enumerate(features):
        assert bins[:, column].tolist() == stats.bin_index(values[:, column]).tolist()
    assert outside.tolist() == [1, 3]
    assert nulls.tolist() == [1, 1]


@pytest.fixture(scope="module")
def churn() -> pd.DataFrame:
    frame = load_source("synthetic:churn")
    return frame.assign(plan=frame["plan"].where(frame.index % 17 > 0, "enterprise"))  # unseen by the profile


def test_the_monitor_bins_every_feature_of_a_mixed_model_as_bin_index(churn: pd.DataFrame) -> None:
    """Numbers, text, booleans, integer levels and nulls (the churn table): the window, unseen and null counts."""
    profile = reference.build_profile(churn.iloc[100:], "churned")
    assert {s.kind for s in profile.features.values()} == {reference.NUMERIC, reference.CATEGORICAL}
    features = prepare_features(churn.iloc[:100], profile)
    columns = [Column(n, "double" if s.is_numeric else "string", s.optional, s) for n, s in profile.features.items()]
    instances = [dict(zip(features.columns, row, strict=True)) for row in features.itertuples(index=False)]
    for rows in (instances[:1], instances):  # one row (the one-at-a-time push), and a batch
        batch = FrameBuilder(columns).build(rows)
        monitor = InputMonitor(columns, profile, window=500, min_requests=1)
        before = {
            (metric, name): REGISTRY.get_sample_value(metric, {"feature": name}) or 0.0
            for metric in ("plinth_missing_values_total", "plinth_unseen_category_total")
            for name in profile.feature_names
        }
        monitor.observe(batch)
        for index, (name, stats) in enumerate(profile.features.items()):
            expected = stats.bin_index(batch.column(name))
            assert monitor.window[: len(rows), index].tolist() == expected.tolist(), name
            counts = np.bincount(expected, minlength=stats.n_bins)
            assert monitor.counts[index, : stats.n_bins].tolist() == counts.tolist(), name
            nulls = int(pd.isna(batch.column(name)).sum())
            missing = REGISTRY.get_sample_value("plinth_missing_values_total", {"feature": name}) or 0.0
            assert missing - before[("plinth_missing_values_total", name)] == (nulls if stats.optional else 0), name
            if not stats.is_numeric:
                unseen = int((expected == len(stats.categories)).sum())
                count = REGISTRY.get_sample_value("plinth_unseen_category_total", {"feature": name}) or 0.0
                assert count - before[("plinth_unseen_category_total", name)] == unseen, name
    assert (np.asarray(batch.column("plan")) == "enterprise").any(), "the batch holds an unseen category"
