"""What a rollout cost the clients: time from the canary's first request to weight 0, and failed requests.

The demo's summary and the benchmark both report these numbers, computed from the router's weight log and
the traffic generator's answers, so they measure what a client saw rather than what the controller thinks.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.rollout.edges.router import RouterStats
from serving.rollout.harness.traffic import TrafficLog, failed


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
