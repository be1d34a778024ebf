"""Prediction divergence for any task: Jensen-Shannon over every output distribution both tracks report.

A classifier exports its predicted-class counts and one probability histogram per class (a binary one only
its positive class's), a regressor its predicted-value histogram. Rather than a spec per task, the check
compares each distribution that both the canary and the stable report, and judges the largest divergence,
naming which distribution it came from. For a binary model the class counts are the probability histogram
cut at 0.5, and coarsening never raises Jensen-Shannon, so the largest is the probability histogram's,
exactly what the check computed before tasks existed. Value histograms of two regression models have
different bucket bounds (each model's own target deciles); `histogram.align` puts them on common bounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from serving.rollout.core.histogram import count_divergence, histogram_divergence
from serving.rollout.core.observe import Predictions


@dataclass(frozen=True)
class Divergence:
    """The largest divergence found and the distribution it belongs to (NaN and "" when none compared)."""

    value: float
    distribution: str
    compared: tuple[str, ...] = ()


def probability_name(label: str) -> str:
    """Name one class's probability histogram in a check's detail."""
    return f"P(class {label}) histogram" if label else "predicted probability histogram"


def _pairs(canary: Predictions, stable: Predictions) -> Iterator[tuple[str, float]]:
    """Yield (name, divergence) of every distribution both tracks report (NaN where it cannot be computed)."""
    for label in sorted(set(canary.probabilities) & set(stable.probabilities)):
        yield probability_name(label), histogram_divergence(canary.probabilities[label], stable.probabilities[label])
    if canary.values and stable.values:
        yield "predicted value histogram", histogram_divergence(canary.values, stable.values)
    if canary.classes and stable.classes:
        yield "predicted class distribution", count_divergence(canary.classes, stable.classes)


def divergence(canary: Predictions, stable: Predictions) -> Divergence:
    """Return the largest Jensen-Shannon divergence over the distributions both tracks report.

    A distribution whose divergence cannot be computed (no observations on one side, a histogram without
    finite bounds) is left out; when none is left the value is NaN, which never passes a check.
    """
    best, name, compared = math.nan, "", []
    for candidate, value in _pairs(canary, stable):
        if math.isnan(value):
            continue
        compared.append(candidate)
        if math.isnan(best) or value > best:
            best, name = value, candidate
    return Divergence(best, name, tuple(compared))


def describe(predictions: Predictions) -> str:
    """Name the distributions a track reported, for a detail that explains why nothing was compared."""
    parts = [probability_name(label) for label in sorted(predictions.probabilities)]
    if predictions.values:
        parts.append("predicted value histogram")
    if predictions.classes:
        parts.append("predicted class distribution")
    return ", ".join(parts) or "nothing"
