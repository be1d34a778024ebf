"""Bucket arithmetic shared by both metrics sources and the divergence check.

The direct-/metrics source needs Prometheus' `histogram_quantile` on its own, and both sources hand the
analysis cumulative buckets, which the divergence check turns into bin shares.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

NAN = math.nan


def histogram_quantile(quantile: float, buckets: Mapping[float, float]) -> float:
    """Return the quantile of cumulative `buckets` (le -> count) the way Prometheus interpolates it.

    Linear interpolation inside the bucket that holds the rank; a rank in the +Inf bucket returns the
    highest finite bound. NaN when there are no observations.
    """
    bounds = sorted(buckets)
    if not bounds or not math.isinf(bounds[-1]):
        return NAN
    total = buckets[bounds[-1]]
    if not total > 0:
        return NAN
    rank = quantile * total
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return bounds[-2] if len(bounds) > 1 else NAN
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return bounds[-2] if len(bounds) > 1 else NAN


def bin_shares(buckets: Mapping[float, float]) -> dict[float, float]:
    """Turn cumulative buckets into the share of observations in each bin (keyed by upper bound)."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if not total > 0:
        return {}
    shares, previous = {}, 0.0
    for bound in bounds:
        count = max(buckets[bound], previous)
        shares[bound] = (count - previous) / total
        previous = count
    return shares


def jensen_shannon(first: Mapping[float, float], second: Mapping[float, float]) -> float:
    """Return the Jensen-Shannon divergence (base 2, 0 = same, 1 = disjoint) of two bin-share maps.

    JS rather than PSI: it stays finite when one side has an empty bin, which is common when a healthy
    model puts nearly all its mass near 0 and 1. NaN when either side is empty or the bins differ.
    """
    if not first or not second or set(first) != set(second):
        return NAN
    divergence = 0.0
    for bound in first:
        p, q = first[bound], second[bound]
        mean = (p + q) / 2
        if p > 0:
            divergence += 0.5 * p * math.log2(p / mean)
        if q > 0:
            divergence += 0.5 * q * math.log2(q / mean)
    return max(0.0, divergence)


def bucket_total(buckets: Mapping[float, float]) -> float:
    """Return the number of observations in cumulative `buckets` (the +Inf bucket), 0 when empty."""
    return max(buckets.values()) if buckets else 0.0
