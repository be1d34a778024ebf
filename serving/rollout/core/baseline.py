"""What a rollout has seen so far, summed over its intervals, and kept across a controller's restart.

The sums the checks judge: the stable's last p99, both tracks' predictions, ground-truth labels and traffic
(requests, 5xx and durations, which the sequential comparisons compare). A module of its own so that the
comparisons (`comparisons`, `cbpe`) and the judge (`analyse`) share it without importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from serving.rollout.core.observe import (
    Buckets,
    LiveQuality,
    Observation,
    Predictions,
    TrackSample,
    add_counts,
    add_known,
    bounds_in,
    bounds_out,
)


@dataclass
class Traffic:
    """One track's `/predict` requests, 5xx answers and duration histogram, summed over the rollout."""

    requests: float = 0.0
    errors: float = 0.0
    latency: Buckets = field(default_factory=dict)

    def add(self, sample: TrackSample) -> None:
        """Fold one interval in (NaN counts are no data, skipped)."""
        self.requests = add_known(self.requests, sample.requests)
        self.errors = add_known(self.errors, sample.errors)
        add_counts(self.latency, sample.latency)

    def to_record(self) -> dict[str, Any]:
        """Return the sums as JSON-safe data."""
        return {"requests": self.requests, "errors": self.errors, "latency": bounds_out(self.latency)}

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> Traffic:
        """Read sums written by `to_record` (a record from before they were kept: none)."""
        return cls(float(data.get("requests", 0.0)), float(data.get("errors", 0.0)), bounds_in(data.get("latency", {})))


@dataclass
class Baseline:
    """What the rollout has seen so far: the stable's last p99 and both tracks' predictions, summed.

    At 100 % canary weight the stable gets no traffic, so its last well-sampled p99 stands in. Predictions
    are summed over the rollout because a model's output distribution does not depend on the weight, and a
    Jensen-Shannon estimate from a dozen predictions is mostly sampling noise. Ground-truth labels are summed
    for the same reason, and because they arrive sparse and late.
    """

    p99_seconds: float = math.nan
    stable_predictions: Predictions = field(default_factory=Predictions)
    canary_predictions: Predictions = field(default_factory=Predictions)
    stable_live: LiveQuality = field(default_factory=LiveQuality)
    canary_live: LiveQuality = field(default_factory=LiveQuality)
    # Requests, 5xx and durations summed: what the sequential checks compare (a restart continues the test).
    stable_traffic: Traffic = field(default_factory=Traffic)
    canary_traffic: Traffic = field(default_factory=Traffic)

    def to_record(self) -> dict[str, Any]:
        """Return the baseline as JSON-safe data, for a controller that must survive its own restart."""
        return {
            "p99_seconds": None if math.isnan(self.p99_seconds) else self.p99_seconds,
            "stable_predictions": self.stable_predictions.to_record(),
            "canary_predictions": self.canary_predictions.to_record(),
            "stable_live": self.stable_live.to_record(),
            "canary_live": self.canary_live.to_record(),
            "stable_traffic": self.stable_traffic.to_record(),
            "canary_traffic": self.canary_traffic.to_record(),
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Baseline:
        """Read a baseline written by `to_record` (an empty record gives an empty baseline)."""
        p99 = data.get("p99_seconds")
        return cls(
            p99_seconds=math.nan if p99 is None else float(p99),
            stable_predictions=Predictions.from_record(data.get("stable_predictions", {})),
            canary_predictions=Predictions.from_record(data.get("canary_predictions", {})),
            stable_live=LiveQuality.from_record(data.get("stable_live", {})),
            canary_live=LiveQuality.from_record(data.get("canary_live", {})),
            stable_traffic=Traffic.from_record(data.get("stable_traffic", {})),
            canary_traffic=Traffic.from_record(data.get("canary_traffic", {})),
        )

    def update(self, observation: Observation, min_requests: int) -> None:
        """Fold one interval in."""
        stable = observation.stable
        if stable.requests >= min_requests and not math.isnan(stable.p99_seconds):
            self.p99_seconds = stable.p99_seconds
        self.stable_predictions.add(stable.predictions)
        self.canary_predictions.add(observation.canary.predictions)
        self.stable_live.add(stable.live)
        self.canary_live.add(observation.canary.live)
        self.stable_traffic.add(stable)
        self.canary_traffic.add(observation.canary)
