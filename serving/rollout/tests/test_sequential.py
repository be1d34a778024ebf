import json
import math

import numpy as np
import pytest

from serving.rollout.core.sequential import (
    BETTER,
    CONTINUE,
    NO_REGRESSION,
    REGRESSION,
    compare_distributions,
    compare_means,
    compare_proportions,
    decide,
    mixture_half_width,
    proportion_difference,
)


def test_peeking_every_interval_keeps_false_regressions_below_alpha_where_a_z_test_does_not():
    """5,000 identical canaries looked at 40 times: the sequence stays within alpha, a repeated z-test does not."""
    rng = np.random.default_rng(7)
    runs, looks, per_look = 5000, 40, 100
    n_a = np.cumsum(np.full((runs, looks), per_look), axis=1)
    n_b = 4 * n_a
    s_a = np.cumsum(rng.binomial(per_look, 0.9, (runs, looks)), axis=1)
    s_b = np.cumsum(rng.binomial(4 * per_look, 0.9, (runs, looks)), axis=1)
    estimate, variance = proportion_difference(s_a, n_a, s_b, n_b)
    sequential = decide(estimate, mixture_half_width(variance, 0.05, 0.02), 0.02)
    assert (sequential == REGRESSION).any(axis=1).mean() <= 0.05
    fixed = decide(estimate, 1.645 * np.sqrt(variance), 0.02)  # one-sided 5 % z-test, at every look
    assert (fixed == REGRESSION).any(axis=1).mean() > 0.1


def test_a_clear_regression_is_found_and_its_evidence_recorded():
    result = compare_proportions(880, 1000, 2970, 3000, alpha=0.05, min_effect=0.01)
    assert result.decision == REGRESSION
    assert result.interval[1] < 0 < result.bound
    assert result.crossed.startswith("upper bound")
    assert result.crossed.endswith("< 0")
    assert (result.n_a, result.n_b) == (1000, 3000)
    record = json.loads(json.dumps(result.to_record()))
    assert record["decision"] == REGRESSION
    assert record["interval"][1] < 0


def test_enough_equal_evidence_rules_out_the_min_effect_and_little_evidence_continues():
    assert compare_proportions(99_000, 100_000, 99_000, 100_000, 0.05, 0.01).decision == NO_REGRESSION
    assert compare_proportions(29, 30, 297, 300, 0.05, 0.01).decision == CONTINUE
    assert compare_proportions(9_900, 10_000, 9_000, 10_000, 0.05, 0.01).decision == BETTER


def test_no_data_continues_with_an_unbounded_interval():
    result = compare_proportions(0, 0, 100, 100, 0.05, 0.01)
    assert result.decision == CONTINUE
    assert result.interval == (-math.inf, math.inf)
    assert result.to_record()["interval"] == [None, None]


def test_means_compare_like_proportions():
    assert compare_means(0.5, 0.25, 50_000, 0.6, 0.25, 50_000, 0.05, 0.02).decision == REGRESSION
    assert compare_means(0.5, 0.25, 10, 0.5, 0.25, 10, 0.05, 0.02).decision == CONTINUE


def test_a_shifted_class_distribution_is_a_regression_either_way():
    stable = [5000, 5000]
    shifted = compare_distributions([3000, 7000], stable, 0.05, 0.05)
    assert shifted.decision == REGRESSION
    assert shifted.crossed
    assert compare_distributions([5020, 4980], stable, 0.05, 0.05).decision == NO_REGRESSION
    assert compare_distributions([10, 12], stable, 0.05, 0.05).decision == CONTINUE


@pytest.mark.parametrize(("alpha", "effect"), [(0, 0.01), (1, 0.01), (0.05, 0), (0.05, math.inf)])
def test_bad_level_or_effect_is_refused(alpha, effect):
    with pytest.raises(ValueError, match=r"alpha|min_effect"):
        compare_proportions(1, 2, 1, 2, alpha, effect)


def test_a_tolerated_shift_is_no_regression_until_the_interval_passes_it():
    stable = [5000, 5000]
    assert compare_distributions([4700, 5300], stable, 0.05, 0.02).decision == REGRESSION
    assert compare_distributions([4700, 5300], stable, 0.05, 0.02, tolerance=0.05).decision != REGRESSION
    assert compare_proportions(9_700, 10_000, 9_900, 10_000, 0.05, 0.01, tolerance=0.05).decision == CONTINUE
