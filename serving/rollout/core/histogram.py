"""Bucket arithmetic shared by both metrics sources and the divergence check.

The direct-/metrics source needs Prometheus' `histogram_quantile` on its own, and both sources hand the
analysis cumulative buckets, which the divergence check turns into bin shares. Two tracks' histograms need
not share their bucket bounds (a regression model's prediction buckets are its own target deciles), so
`align` resamples both onto one set of bounds before they are compared.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Hashable, Mapping
from typing import TypeVar

NAN = math.nan
INF = math.inf
Key = TypeVar("Key", bound=Hashable)


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


def monotonic(buckets: Mapping[float, float]) -> dict[float, float]:
    """Return cumulative buckets sorted by bound, each count at least the one below it.

    Prometheus' `increase` extrapolates every bucket series on its own, so a summed histogram can dip by a
    fraction of an observation; a cumulative count never really decreases.
    """
    out: dict[float, float] = {}
    previous = 0.0
    for bound in sorted(buckets):
        previous = max(buckets[bound], previous)
        out[bound] = previous
    return out


def bin_shares(buckets: Mapping[float, float]) -> dict[float, float]:
    """Turn cumulative buckets into the share of observations in each bin (keyed by upper bound)."""
    cumulative = monotonic(buckets)
    total = max(cumulative.values(), default=0.0)
    if not total > 0:
        return {}
    shares, previous = {}, 0.0
    for bound, count in cumulative.items():
        shares[bound] = (count - previous) / total
        previous = count
    return shares


def cumulative_at(buckets: Mapping[float, float], point: float) -> float:
    """Return the observations at or below `point`, interpolating linearly inside a finite bucket.

    Linear inside a bucket is what `histogram_quantile` assumes. Outside the finite bounds nothing is
    known about the shape, so the open buckets are taken to sit on their finite bound: below the lowest
    bound the count is 0, above the highest it is the total (`histogram_quantile` also answers the highest
    finite bound for a rank in the +Inf bucket). `align` only asks outside the finite bounds when the two
    histograms' ranges do not overlap at all.
    """
    cumulative = monotonic(buckets)
    bounds = [bound for bound in cumulative if not math.isinf(bound)]
    total = max(cumulative.values(), default=0.0)
    if not bounds or point > bounds[-1]:
        return total
    if point < bounds[0]:
        return 0.0
    index = bisect.bisect_left(bounds, point)
    upper = bounds[index]
    if upper == point or index == 0:
        return cumulative[upper]
    lower = bounds[index - 1]
    share = (point - lower) / (upper - lower)
    return cumulative[lower] + (cumulative[upper] - cumulative[lower]) * share


def common_bounds(first: Mapping[float, float], second: Mapping[float, float]) -> list[float]:
    """Return the finite bounds both histograms are resampled to (empty when either has none).

    The union of both sides' finite bounds between the two inner ends of their ranges (the larger lowest
    bound and the smaller highest bound). Inside that span every bound lies within a finite bucket of each
    side, so resampling is plain interpolation; beyond it the open-ended buckets merge, rather than
    inventing where one side's tail mass sits. Two healthy regression models trained on different rows
    have slightly different deciles, and placing either tail on a point would read as divergence.
    When the ranges do not overlap the span is the gap between them, which keeps them apart.
    """
    ends = []
    for buckets in (first, second):
        finite = sorted(bound for bound in buckets if not math.isinf(bound))
        if not finite:
            return []
        ends.append((finite[0], finite[-1]))
    low, high = max(ends[0][0], ends[1][0]), min(ends[0][1], ends[1][1])
    low, high = min(low, high), max(low, high)
    union = {bound for buckets in (first, second) for bound in buckets if not math.isinf(bound)}
    return sorted(bound for bound in union if low <= bound <= high)


def align(first: Mapping[float, float], second: Mapping[float, float]) -> tuple[dict[float, float], dict[float, float]]:
    """Resample two cumulative histograms onto `common_bounds` (+Inf included); empty when impossible."""
    bounds = common_bounds(first, second)
    if not bounds:
        return {}, {}
    resampled = []
    for buckets in (first, second):
        out = {bound: cumulative_at(buckets, bound) for bound in bounds}
        out[INF] = max(buckets.values(), default=0.0)
        resampled.append(out)
    return resampled[0], resampled[1]


def jensen_shannon(first: Mapping[Key, float], second: Mapping[Key, float]) -> float:
    """Return the Jensen-Shannon divergence (base 2, 0 = same, 1 = disjoint) of two share maps.

    JS rather than PSI: it stays finite when one side has an empty bin, which is common when a healthy
    model puts nearly all its mass near 0 and 1. NaN when either side is empty or the bins differ.
    """
    if not first or not second or set(first) != set(second):
        return NAN
    divergence = 0.0
    for key in first:
        p, q = first[key], second[key]
        mean = (p + q) / 2
        if p > 0:
            divergence += 0.5 * p * math.log2(p / mean)
        if q > 0:
            divergence += 0.5 * q * math.log2(q / mean)
    return max(0.0, divergence)


def histogram_divergence(first: Mapping[float, float], second: Mapping[float, float]) -> float:
    """Return the Jensen-Shannon divergence of two cumulative histograms, bounds aligned first."""
    aligned = align(first, second)
    return jensen_shannon(bin_shares(aligned[0]), bin_shares(aligned[1]))


def count_divergence(first: Mapping[str, float], second: Mapping[str, float]) -> float:
    """Return the Jensen-Shannon divergence of two count maps (a key one side lacks counts 0 there)."""
    keys = set(first) | set(second)
    totals = [sum(max(0.0, counts.get(key, 0.0)) for key in keys) for counts in (first, second)]
    if not all(total > 0 for total in totals):
        return NAN
    shares = [
        {key: max(0.0, counts.get(key, 0.0)) / total for key in keys}
        for counts, total in zip((first, second), totals, strict=True)
    ]
    return jensen_shannon(shares[0], shares[1])


def bucket_total(buckets: Mapping[float, float]) -> float:
    """Return the number of observations in cumulative `buckets` (the +Inf bucket), 0 when empty."""
    return max(buckets.values()) if buckets else 0.0
