import numpy as np
import pandas as pd
import pytest

from components.common.profile import (
    CATEGORICAL,
    MISSING_CATEGORY,
    NUMERIC,
    ReferenceProfile,
    bin_counts,
    build_profile,
    category_strings,
    column_kind,
    feature_psi,
    psi,
)
from components.common.task import BINARY, Task


def test_profile_round_trips_and_keeps_feature_order(breast_cancer):
    profile = build_profile(breast_cancer, "target")
    restored = ReferenceProfile.from_dict(profile.to_dict())
    assert restored == profile
    assert restored.feature_names == [c for c in breast_cancer.columns if c != "target"]
    assert sum(profile.features["mean_radius"].bin_shares) == pytest.approx(1.0)
    assert profile.task == Task(BINARY, (0, 1))


def test_a_profile_written_before_tasks_existed_reads_as_binary_with_integer_labels(breast_cancer):
    old = build_profile(breast_cancer, "target").to_dict()
    del old["task"], old["target_profile"]
    for feature in old["features"]:
        del feature["kind"], feature["categories"]
    assert ReferenceProfile.from_dict(old).task == Task(BINARY, (0, 1))


def test_small_healthy_windows_do_not_read_as_drift(breast_cancer):
    """50 rows (serving's smallest drift window) from the reference itself stay under the fast spec's 0.6.

    With a bare 1e-4 floor, one empty bin alone scores about 0.7, so most such windows read as drift.
    """
    profile = build_profile(breast_cancer, "target")
    rng = np.random.default_rng(0)
    worst = []
    for _ in range(50):
        sample = breast_cancer.sample(50, random_state=int(rng.integers(1 << 30)))
        worst.append(max(feature_psi(stats, sample[name]) for name, stats in profile.features.items()))
    assert np.percentile(worst, 95) < 0.6


def test_shifted_data_reads_as_drift(breast_cancer):
    stats = build_profile(breast_cancer, "target").features["mean_radius"]
    shifted = breast_cancer["mean_radius"].to_numpy() * 1.5
    assert psi(stats.bin_shares, bin_counts(shifted, stats.bin_edges)) > 1.0
    assert feature_psi(stats, shifted) > 1.0
    assert feature_psi(stats, breast_cancer["mean_radius"]) < 0.01


def test_psi_works_on_many_features_at_once_and_ignores_padding():
    expected = np.array([[0.5, 0.5, 0.0], [0.25, 0.25, 0.5]])
    counts = np.array([[10, 10, 0], [500, 500, 1000]])
    np.testing.assert_allclose(psi(expected, counts), [0.0, 0.0], atol=1e-3)
    assert psi([0.5, 0.5], [20, 0]) > psi([0.5, 0.5], [15, 5]) > 0


def test_category_names_are_the_same_whichever_json_type_carries_them():
    names = category_strings([3, 3.0, "3", True, None, float("nan"), 2.5, "a"])
    assert names.tolist() == ["3", "3", "3", "True", MISSING_CATEGORY, MISSING_CATEGORY, "2.5", "a"]


@pytest.mark.parametrize(
    ("series", "declared", "kind"),
    [
        (pd.Series([1.5, 2.5, 3.5]), False, NUMERIC),
        (pd.Series(list(range(40))), False, NUMERIC),
        (pd.Series([0, 1, 2, 1]), False, CATEGORICAL),
        (pd.Series([1.5, 2.5]), True, CATEGORICAL),
        (pd.Series(["a", "b"]), False, CATEGORICAL),
        (pd.Series([True, False]), False, CATEGORICAL),
    ],
)
def test_column_kinds(series, declared, kind):
    assert column_kind(series, declared) == kind


def test_categorical_profile_bins_unseen_and_missing_values_apart():
    frame = pd.DataFrame({"plan": ["a"] * 60 + ["b"] * 30 + [None] * 10, "y": [0, 1] * 50})
    stats = build_profile(frame, "y").features["plan"]
    assert stats.kind == CATEGORICAL
    assert stats.categories == ["a", "b"]
    assert stats.bin_shares == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert stats.missing_share == pytest.approx(0.1)
    assert stats.bin_index(["a", "b", "zzz", None]).tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(stats.expected_shares(), [0.6, 0.3, 0.0, 0.1])
    assert feature_psi(stats, frame["plan"]) < 0.01
    assert feature_psi(stats, ["zzz"] * 50) > 1.0
    assert feature_psi(stats, [None] * 50) > 1.0


def test_missing_numbers_count_in_their_own_bin():
    frame = pd.DataFrame({"x": [float(i) for i in range(90)] + [np.nan] * 10, "y": [0, 1] * 50})
    stats = build_profile(frame, "y").features["x"]
    assert stats.optional
    assert stats.bin_index([np.nan, 0.0]).tolist() == [len(stats.bin_shares), 0]
    assert feature_psi(stats, frame["x"]) < 0.01
    assert feature_psi(stats, [np.nan] * 60) > 1.0


def test_regression_profile_carries_the_target_bins(tables):
    profile = tables["regression"].profile
    assert profile.class_shares == {}
    assert profile.target_profile is not None
    assert len(profile.target_profile.bin_edges) == 9
