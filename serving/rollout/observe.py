"""What a metrics source reports for one analysis interval, per track, and the contract sources meet.

Every number may be NaN: a source never invents a value it could not read, and the analysis treats NaN as
"no data", which never passes a check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

NAN = math.nan
STABLE = "stable"
CANARY = "canary"
PREDICT_ENDPOINT = "/predict"


@dataclass(frozen=True)
class TrackSample:
    """One track's signals over the interval."""

    requests: float = NAN
    errors: float = NAN
    p99_seconds: float = NAN
    # Cumulative histogram of P(class 1) over the interval: upper bound (le) -> count, +Inf included.
    probability_buckets: dict[float, float] = field(default_factory=dict)
    input_drift: float = NAN
    model_version: str | None = None
    # Why the source has nothing for this track (target down, service not answering), None when it read it.
    missing: str | None = None

    @property
    def success_rate(self) -> float:
        """Return the non-5xx share of requests, NaN without requests."""
        if not self.requests > 0 or math.isnan(self.errors):
            return NAN
        return 1.0 - self.errors / self.requests


@dataclass(frozen=True)
class Observation:
    """Both tracks over one interval, and why the source could not read them if it could not."""

    stable: TrackSample
    canary: TrackSample
    error: str | None = None


class MetricsSource(Protocol):
    """Reads the signals of both tracks over the last `window_seconds`."""

    def start(self) -> None:
        """Mark the start of a rollout (a source that computes deltas takes its baseline here)."""

    def observe(self, window_seconds: float) -> Observation:
        """Return both tracks' signals over the window ending now; never raise for missing data."""


def empty_observation(error: str) -> Observation:
    """Return an observation with no data on either track."""
    return Observation(stable=TrackSample(), canary=TrackSample(), error=error)
