"""The controller's own Prometheus metrics (module level, small fixed label sets)."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, start_http_server

LOG = logging.getLogger("plinth.rollout")
ROLLOUT_WEIGHT = Gauge("plinth_rollout_weight", "Current canary traffic weight, percent.", ["model_name"])
ROLLOUT_CHECKS = Counter("plinth_rollout_checks", "Analysis check results per interval.", ["check", "result"])
ROLLOUT_DECISIONS = Counter("plinth_rollout_decisions", "Rollout outcomes.", ["result"])


def serve_metrics(port: int) -> None:
    """Expose the controller's metrics on `port` (0 disables); a busy port is reported, not fatal."""
    if not port:
        return
    try:
        start_http_server(port)
    except OSError as error:
        LOG.warning("controller metrics not served: port %d: %s", port, error.strerror)
