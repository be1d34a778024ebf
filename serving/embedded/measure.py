"""What a rollout cost the clients: time from the canary's first request to weight 0, failed and slowed requests.

The demo's summary and the benchmark report these numbers, computed from the router's weight log and the
traffic generator's answers, so they measure what a client saw rather than what the controller thinks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from serving.embedded.traffic import TrafficLog, failed
from serving.rollout.core.observe import CANARY
from serving.rollout.edges.router import RouterStats


@dataclass(frozen=True)
class Exposure:
    """The window in which clients could reach the canary."""

    seconds: float
    requests: int
    failed: int
    canary_requests: int

    @property
    def failed_share(self) -> float:
        """Return the share of all requests in the window that failed (5xx or no answer)."""
        return self.failed / self.requests if self.requests else 0.0


def exposure(stats: RouterStats, log: TrafficLog, since: float) -> Exposure | None:
    """Measure from the first canary request after `since` to the first weight 0 after it (None if none)."""
    first = stats.first_canary_request
    if first is None or first < since:
        return None
    ends = [at for at, weight in stats.weights if at >= first and weight == 0]
    if not ends:
        return None
    answers = log.between(first, ends[0])
    return Exposure(
        seconds=ends[0] - first,
        requests=len(answers),
        failed=sum(1 for answer in answers if failed(answer)),
        canary_requests=sum(1 for answer in answers if answer.track == "canary"),
    )


@dataclass(frozen=True)
class Impact:
    """What the users sent during a rollout saw: how many failed, how many were slowed, who answered."""

    requests: int
    failed: int
    slowed: int
    canary_answers: int


def p99(log: TrafficLog, start: float, end: float) -> float:
    """Return the 99th percentile of the answered (non-failed) requests' latency sent in [start, end] (NaN: none)."""
    seconds = sorted(answer.seconds for answer in log.between(start, end) if not failed(answer))
    if not seconds:
        return float("nan")
    return seconds[min(len(seconds) - 1, math.ceil(0.99 * len(seconds)) - 1)]


def impact(log: TrafficLog, start: float, end: float, slow_seconds: float) -> Impact:
    """Count the requests sent in [start, end]: failed (5xx or no answer), slowed (answered after `slow_seconds`)."""
    answers = log.between(start, end)
    return Impact(
        requests=len(answers),
        failed=sum(1 for answer in answers if failed(answer)),
        slowed=sum(1 for answer in answers if not failed(answer) and answer.seconds > slow_seconds),
        canary_answers=sum(1 for answer in answers if answer.track == CANARY),
    )
