"""The controller's own Prometheus metrics (module level, small fixed label sets)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, start_http_server

ROLLOUT_WEIGHT = Gauge("plinth_rollout_weight", "Current canary traffic weight, percent.", ["model_name"])
ROLLOUT_CHECKS = Counter("plinth_rollout_checks", "Analysis check results per interval.", ["check", "result"])
ROLLOUT_DECISIONS = Counter("plinth_rollout_decisions", "Rollout outcomes.", ["result"])


def serve_metrics(port: int) -> None:
    """Expose the controller's metrics on 127.0.0.1-or-all `port` (0 disables)."""
    if port:
        start_http_server(port)
