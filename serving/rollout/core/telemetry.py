"""The controller's own Prometheus metrics (module level, small fixed label sets)."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, start_http_server

from components.common.tracking import CANCELED, PROMOTED, ROLLED_BACK
from serving.rollout.core.results import FAIL, NO_DATA, NOT_APPLICABLE, PASS, PENDING, CheckResult
from serving.rollout.core.sequential import REGRESSION
from serving.rollout.core.spec import CHECK_NAMES

LOG = logging.getLogger("plinth.rollout")
ROLLOUT_WEIGHT = Gauge("plinth_rollout_weight", "Current canary traffic weight, percent.", ["model_name"])
ROLLOUT_CHECKS = Counter("plinth_rollout_checks", "Analysis check results per interval.", ["check", "result"])
ROLLOUT_DECISIONS = Counter("plinth_rollout_decisions", "Rollout outcomes.", ["result"])
# The latest comparison of each check with the stable (checks with alpha and minEffect): canary - stable, the
# ends of its confidence sequence, both sample sizes, alpha, and `regression` 1 once a regression is proven.
ROLLOUT_EVIDENCE = Gauge(
    "plinth_rollout_check_evidence", "Latest canary-vs-stable comparison per check.", ["check", "quantity"]
)
# Calls the API server refused (an admission denial, 403, 404, 422, 5xx), by HTTP status: alert on any increase.
ROLLOUT_REFUSALS = Counter("plinth_rollout_refusals", "API calls the cluster refused.", ["code"])
REFUSAL_CODES = (400, 403, 404, 409, 415, 422, 429, 500, 503, 504)


def declare_series() -> None:
    """Create every check result and decision series at zero.

    A labelled counter series otherwise appears at its first increment, and `increase()` cannot tell that
    first count from the series' start: the first rollback of a controller's life would never show.
    """
    for check in CHECK_NAMES:
        for result in (PASS, FAIL, NO_DATA, PENDING, NOT_APPLICABLE):
            ROLLOUT_CHECKS.labels(check, result)
    for decision in (PROMOTED, ROLLED_BACK, CANCELED):
        ROLLOUT_DECISIONS.labels(decision)
    for code in REFUSAL_CODES:
        ROLLOUT_REFUSALS.labels(str(code))


def observe_evidence(result: CheckResult) -> None:
    """Set the check's evidence gauges from one interval's result (a result without a comparison sets none)."""
    evidence = result.evidence
    if evidence is None:
        return
    low, high = evidence.interval
    quantities = {
        "difference": evidence.statistic,
        "lower": low,
        "upper": high,
        "canary_samples": evidence.n_a,
        "stable_samples": evidence.n_b,
        "alpha": evidence.alpha,
        "regression": float(evidence.decision == REGRESSION),
    }
    for quantity, value in quantities.items():
        ROLLOUT_EVIDENCE.labels(result.name, quantity).set(value)


def serve_metrics(port: int) -> None:
    """Expose the controller's metrics on `port` (0 disables); a busy port is reported, not fatal."""
    if not port:
        return
    declare_series()
    try:
        start_http_server(port)
    except OSError as error:
        LOG.warning("controller metrics not served: port %d: %s", port, error.strerror)
