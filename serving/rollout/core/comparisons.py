"""The sequential half of the checks: the canary against the stable, on counts summed since the rollout began.

A threshold check judges one interval of the canary alone, so each look is a new chance of a false alarm
and a small regression hides in the noise of each interval. Here each check with `alpha` and `minEffect`
compares the canary with the stable on everything both have answered so far, through a confidence
sequence (`sequential.py`): looking every interval keeps the chance of rolling back a canary as good as the
stable at most `alpha`. The threshold stays beside it as a guard for absurd values (`analyse.py`).

Each function returns the evidence (None: nothing to compare yet); `EVIDENCE` maps a check to its function,
so a new check adds one entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from serving.rollout.core.baseline import Baseline
from serving.rollout.core.divergence import probability_name
from serving.rollout.core.histogram import align, bucket_total, histogram_quantile, monotonic
from serving.rollout.core.mae import compare_mae
from serving.rollout.core.observe import Buckets, Predictions
from serving.rollout.core.sequential import (
    NO_REGRESSION,
    REGRESSION,
    SequentialResult,
    compare_distributions,
    compare_proportions,
)
from serving.rollout.core.spec import Check

# What a check compared (in words, for its detail) and the comparison's result.
Evidence = tuple[str, SequentialResult]


def _level(check: Check) -> tuple[float, float]:
    """Return the check's alpha and minEffect (only called for a sequential check)."""
    assert check.alpha is not None
    assert check.min_effect is not None
    return check.alpha, check.min_effect


def success_evidence(check: Check, baseline: Baseline) -> Evidence | None:
    """Non-5xx share of the canary against the stable's."""
    canary, stable = baseline.canary_traffic, baseline.stable_traffic
    if not canary.requests > 0 or not stable.requests > 0:
        return None
    alpha, effect = _level(check)
    found = compare_proportions(
        canary.requests - canary.errors,
        canary.requests,
        stable.requests - stable.errors,
        stable.requests,
        alpha,
        effect,
    )
    return "non-5xx share", found


def slow_threshold(stable: Buckets) -> float:
    """Return the bucket bound at or above the stable's p99: counts below a bound are exact, not interpolated."""
    p99 = histogram_quantile(0.99, stable)
    if math.isnan(p99):
        return math.nan
    return min((bound for bound in stable if bound >= p99), default=math.nan)


def latency_evidence(check: Check, baseline: Baseline) -> Evidence | None:
    """The canary's share of requests answered within the stable's p99 against the stable's share."""
    canary, stable = monotonic(baseline.canary_traffic.latency), monotonic(baseline.stable_traffic.latency)
    threshold = slow_threshold(stable)
    if math.isnan(threshold) or math.isinf(threshold) or not bucket_total(canary) > 0:
        return None
    alpha, effect = _level(check)
    fast_canary, fast_stable = aligned_at(canary, threshold), stable[threshold]
    found = compare_proportions(fast_canary, bucket_total(canary), fast_stable, bucket_total(stable), alpha, effect)
    return f"share answered within the stable's p99 bucket ({threshold:g}s)", found


def aligned_at(buckets: Buckets, bound: float) -> float:
    """Return the cumulative count at `bound` (a bound both tracks share: the same service's buckets)."""
    if bound in buckets:
        return buckets[bound]
    below = [count for edge, count in buckets.items() if edge <= bound]
    return max(below, default=0.0)


def per_bucket(cumulative: Buckets) -> list[float]:
    """Return per-bucket counts of a cumulative histogram, in bound order (+Inf last)."""
    counts, previous = [], 0.0
    for bound in sorted(cumulative):
        counts.append(max(cumulative[bound] - previous, 0.0))
        previous = max(previous, cumulative[bound])
    return counts


def distributions(canary: Predictions, stable: Predictions) -> Iterator[tuple[str, list[float], list[float]]]:
    """Yield (name, canary cell counts, stable cell counts) of every distribution both tracks report."""
    if canary.classes and stable.classes:
        labels = sorted(set(canary.classes) | set(stable.classes))
        yield (
            "predicted class distribution",
            [canary.classes.get(label, 0.0) for label in labels],
            [stable.classes.get(label, 0.0) for label in labels],
        )
    histograms = [
        (probability_name(label), canary.probabilities[label], stable.probabilities[label])
        for label in sorted(set(canary.probabilities) & set(stable.probabilities))
    ]
    if canary.values and stable.values:
        histograms.append(("predicted value histogram", canary.values, stable.values))
    for name, first, second in histograms:
        # The same service's buckets need no resampling (the common case); two regressors' deciles do.
        left, right = (monotonic(first), monotonic(second)) if first.keys() == second.keys() else align(first, second)
        if left:
            yield name, per_bucket(left), per_bucket(right)


def divergence_evidence(check: Check, baseline: Baseline) -> Evidence | None:
    """Every shared prediction distribution of the canary against the stable's, the whole at level alpha.

    Each distribution gets alpha / distributions, and a cell's share may move by minEffect (a retrained
    model answers somewhat differently) before a shift counts. Returns the regression if one is proven,
    else the least settled comparison, named.
    """
    alpha, effect = _level(check)
    found = list(distributions(baseline.canary_predictions, baseline.stable_predictions))
    if not found:
        return None
    results = [
        (name, compare_distributions(first, second, alpha / len(found), effect, tolerance=effect))
        for name, first, second in found
    ]
    regressions = [pair for pair in results if pair[1].decision == REGRESSION]
    unsettled = [pair for pair in results if pair[1].decision != NO_REGRESSION]
    name, result = (regressions or unsettled or results)[0]
    return f"{name} (largest shift of a share)", result


def live_evidence(check: Check, baseline: Baseline) -> Evidence | None:
    """The canary's accuracy on ground truth against the stable's; a regressor's MAE relative to the stable's."""
    canary, stable = baseline.canary_live, baseline.stable_live
    if check.max_mae_ratio is not None and not math.isnan(canary.mae) and not math.isnan(stable.mae):
        alpha, effect = _level(check)
        found_mae = compare_mae(canary, stable, alpha, effect)
        return None if found_mae is None else ("MAE on labels, relative to the stable's (stable - canary)", found_mae)
    if math.isnan(canary.correct) or math.isnan(stable.correct) or not canary.labelled > 0 or not stable.labelled > 0:
        return None
    alpha, effect = _level(check)
    found = compare_proportions(canary.correct, canary.labelled, stable.correct, stable.labelled, alpha, effect)
    return "accuracy on labels", found


# The comparisons that must rule out a regression of minEffect before promotion (`analyse.hold_unproven`).
# Not the prediction distributions: a sound new model is expected to answer somewhat differently, so there the
# comparison only stops a shift proven beyond minEffect.
GATES_PROMOTION = frozenset({"success-rate", "latency-p99", "live-quality"})
# Check name -> its comparison with the stable; a check listed here takes `alpha` and `minEffect`.
EVIDENCE: dict[str, Callable[[Check, Baseline], Evidence | None]] = {
    "success-rate": success_evidence,
    "latency-p99": latency_evidence,
    "prediction-divergence": divergence_evidence,
    "live-quality": live_evidence,
}
