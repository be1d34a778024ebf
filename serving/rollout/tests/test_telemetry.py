"""The controller's metrics endpoint: every decision and check series exists from the start, at zero."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from serving.embedded.processes import free_port
from serving.rollout.core.spec import CHECK_NAMES
from serving.rollout.core.telemetry import serve_metrics


def test_decision_and_check_series_are_served_before_the_first_rollout() -> None:
    port = free_port()
    serve_metrics(port)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    for decision in ("promoted", "rolled_back", "canceled"):
        assert (("plinth_rollout_decisions_total", (("result", decision),))) in samples
    checks = {dict(labels)["check"] for name, labels in samples if name == "plinth_rollout_checks_total"}
    assert checks == set(CHECK_NAMES)
    refusals = {dict(labels)["code"] for name, labels in samples if name == "plinth_rollout_refusals_total"}
    assert {"403", "404", "422", "500", "503"} <= refusals
