import math

import numpy as np
import pytest

from serving.rollout.core.histogram import (
    INF,
    align,
    bin_shares,
    common_bounds,
    count_divergence,
    cumulative_at,
    histogram_divergence,
    histogram_quantile,
    jensen_shannon,
)

PROBABILITY_BOUNDS = [round(0.1 * i, 1) for i in range(1, 11)]


def histogram(values: np.ndarray, bounds: list[float]) -> dict[float, float]:
    """Cumulative buckets (le -> count, +Inf included) as a Prometheus histogram would hold them."""
    out = {bound: float(np.count_nonzero(values <= bound)) for bound in bounds}
    out[INF] = float(len(values))
    return out


def deciles(values: np.ndarray) -> list[float]:
    """The inner decile edges a reference profile gives a regression model's prediction buckets."""
    return sorted({float(q) for q in np.quantile(values, np.linspace(0, 1, 11)[1:-1])})


def test_histogram_quantile_matches_prometheus_interpolation():
    buckets = {0.1: 50.0, 0.5: 90.0, 1.0: 100.0, INF: 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.5 + 0.5 * 9 / 10)
    assert math.isnan(histogram_quantile(0.99, {0.1: 0.0, INF: 0.0}))
    assert histogram_quantile(0.99, {0.1: 0.0, 1.0: 0.0, INF: 5.0}) == 1.0


def test_cumulative_at_interpolates_linearly_inside_a_bucket():
    buckets = {1.0: 10.0, 3.0: 30.0, 4.0: 70.0, INF: 100.0}
    assert cumulative_at(buckets, 3.0) == 30.0
    assert cumulative_at(buckets, 2.0) == pytest.approx(20.0)
    assert cumulative_at(buckets, 3.25) == pytest.approx(40.0)
    # Open buckets sit on their finite bound: nothing below the lowest, everything above the highest.
    assert cumulative_at(buckets, 0.5) == 0.0
    assert cumulative_at(buckets, 9.0) == 100.0
    # The inverse of histogram_quantile inside the finite range.
    assert cumulative_at(buckets, histogram_quantile(0.55, buckets)) == pytest.approx(55.0)


def test_cumulative_at_repairs_a_dip_from_per_series_extrapolation():
    assert cumulative_at({1.0: 10.0, 2.0: 9.5, INF: 12.0}, 2.0) == 10.0


def test_same_bounds_are_compared_as_they_are():
    rng = np.random.default_rng(0)
    first = histogram(rng.beta(0.5, 0.5, 300), PROBABILITY_BOUNDS)
    second = histogram(rng.uniform(size=300), PROBABILITY_BOUNDS)
    assert common_bounds(first, second) == PROBABILITY_BOUNDS
    assert align(first, second) == (first, second)
    assert histogram_divergence(first, second) == jensen_shannon(bin_shares(first), bin_shares(second))


def test_common_bounds_are_the_union_inside_both_ranges():
    first = {1.0: 1.0, 2.0: 2.0, 5.0: 3.0, INF: 4.0}
    second = {1.5: 1.0, 3.0: 2.0, 8.0: 3.0, INF: 4.0}
    assert common_bounds(first, second) == [1.5, 2.0, 3.0, 5.0]
    assert common_bounds({INF: 3.0}, second) == []
    assert math.isnan(histogram_divergence({INF: 3.0}, second))


def test_resampled_histograms_keep_their_totals_and_the_gap_between_disjoint_ranges():
    low = {1.0: 40.0, 2.0: 90.0, INF: 100.0}
    high = {10.0: 5.0, 20.0: 50.0, INF: 60.0}
    assert common_bounds(low, high) == [2.0, 10.0]
    first, second = align(low, high)
    assert first == {2.0: 90.0, 10.0: 100.0, INF: 100.0}
    assert second == {2.0: 0.0, 10.0: 5.0, INF: 60.0}
    assert histogram_divergence(low, high) > 0.8


def test_two_samples_of_one_distribution_with_their_own_deciles_do_not_diverge():
    """Two sound regression models: each histogram has the bounds of its own reference deciles."""
    rng = np.random.default_rng(1)
    stable_reference, canary_reference = rng.normal(150, 70, 300), rng.normal(150, 70, 300)
    stable = histogram(rng.normal(150, 70, 400), deciles(stable_reference))
    canary = histogram(rng.normal(150, 70, 400), deciles(canary_reference))
    assert set(stable) != set(canary)
    assert histogram_divergence(canary, stable) < 0.05


def test_a_collapsed_regressor_diverges_from_a_spread_one_across_different_bounds():
    """A model fitted on shuffled targets predicts about the mean; the stable spreads over its deciles."""
    rng = np.random.default_rng(2)
    stable = histogram(rng.normal(150, 70, 400), deciles(rng.normal(150, 70, 300)))
    garbage = histogram(rng.normal(150, 8, 400), deciles(rng.normal(150, 70, 300)))
    assert histogram_divergence(garbage, stable) > 0.4


def test_jensen_shannon_bounds():
    confident = bin_shares({0.1: 45.0, 0.9: 50.0, INF: 100.0})
    flat = bin_shares({0.1: 33.0, 0.9: 66.0, INF: 100.0})
    assert jensen_shannon(confident, confident) == 0.0
    assert 0.1 < jensen_shannon(confident, flat) < 1.0
    assert jensen_shannon({0.5: 1.0, INF: 0.0}, {0.5: 0.0, INF: 1.0}) == pytest.approx(1.0)
    assert math.isnan(jensen_shannon({}, confident))


def test_count_divergence_treats_a_class_one_side_never_predicted_as_zero():
    assert count_divergence({"a": 10.0, "b": 10.0}, {"a": 20.0, "b": 20.0}) == 0.0
    assert count_divergence({"a": 10.0}, {"b": 5.0}) == pytest.approx(1.0)
    assert 0.0 < count_divergence({"a": 10.0, "b": 10.0}, {"a": 10.0, "b": 9.0, "c": 1.0}) < 0.1
    assert math.isnan(count_divergence({"a": 0.0}, {"a": 3.0}))
