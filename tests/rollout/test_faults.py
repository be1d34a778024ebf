"""Faults against real processes: every rollout ends safe.

One local stack (Prometheus, stable `bentoml serve`, router) serves the module; each test deploys its own
canary. Rollbacks run first; the promotion runs last because it hands the stable role to its canary.
"""

import pytest
from mlflow import MlflowClient

from components.common.tracking import CHAMPION
from serving.rollout.observe import CANARY, STABLE
from serving.rollout.processes import free_port
from serving.rollout.record import PROMOTED, REJECTED_TAG, ROLLED_BACK
from serving.rollout.scrape_metrics import ScrapeSource
from serving.rollout.services import Chaos
from tests.rollout.conftest import MODEL, SPEC, Rollout, failed_share, needs_prometheus

pytestmark = [pytest.mark.integration, needs_prometheus]
STATUS = "plinth.rollout.local.status"


def assert_rolled_back(registry, stack, outcome, version, champion, reason):
    assert outcome.status == ROLLED_BACK, outcome.reason
    assert reason in outcome.reason
    assert stack.canary is None
    assert stack.router.weight == 0
    assert registry.alias(CHAMPION) == champion
    tags = registry.tags(version)
    assert tags[STATUS] == ROLLED_BACK
    assert tags[REJECTED_TAG] == "true"
    assert reason in tags[f"{REJECTED_TAG}.reason"]
    assert tags["plinth.rollout.local.finished_at"]


def test_erroring_canary_is_rolled_back(registry, stack, traffic):
    champion = registry.alias()
    canary = stack.deploy_canary(registry.good, Chaos(error_rate=0.5))
    outcome = Rollout(stack, registry, registry.good).start().result()
    assert_rolled_back(registry, stack, outcome, registry.good, champion, "success-rate failed 2 time(s)")
    assert not canary.alive()
    assert 500 in stack.router.stats.answers[CANARY]
    assert stack.router.stats.retried_on_stable > 0
    assert failed_share(traffic.log) < 0.02


def test_garbage_canary_answering_200_is_rolled_back_reading_metrics_directly(registry, stack, traffic):
    """The direct-/metrics fallback (no Prometheus in the loop) catches a model that answers 200 OK with garbage."""
    champion = registry.alias()
    before = dict(stack.router.stats.answers[CANARY])
    canary = stack.deploy_canary(registry.garbage)
    direct = ScrapeSource({STABLE: stack.stable.url, CANARY: canary.url})
    outcome = Rollout(stack, registry, registry.garbage, source=direct).start().result()
    assert_rolled_back(registry, stack, outcome, registry.garbage, champion, "prediction-divergence failed")
    during = {code: n - before.get(code, 0) for code, n in stack.router.stats.answers[CANARY].items()}
    assert {code for code, n in during.items() if n} == {200}


def test_slow_canary_is_rolled_back(registry, stack, traffic):
    champion = registry.alias()
    stack.deploy_canary(registry.good, Chaos(latency_ms=800))
    outcome = Rollout(stack, registry, registry.good).start().result()
    assert_rolled_back(registry, stack, outcome, registry.good, champion, "latency-p99 failed")


def test_killed_canary_is_rolled_back_without_failed_requests(registry, stack, traffic):
    champion = registry.alias()
    canary = stack.deploy_canary(registry.good)
    rollout = Rollout(stack, registry, registry.good).start()
    rollout.wait_for_line("at 10%: advance")
    canary.kill()
    outcome = rollout.result()
    assert_rolled_back(registry, stack, outcome, registry.good, champion, "no values found")
    assert stack.router.stats.retried_on_stable > 0
    assert failed_share(traffic.log) < 0.02


def test_prometheus_killed_mid_rollout_never_promotes(registry, stack, traffic):
    champion = registry.alias()
    stack.deploy_canary(registry.good)
    rollout = Rollout(stack, registry, registry.good).start()
    rollout.wait_for_line("at 10%: advance")
    stack.prometheus.kill()
    try:
        outcome = rollout.result()
    finally:
        stack.prometheus.start().wait_ready()
    assert_rolled_back(registry, stack, outcome, registry.good, champion, "prometheus at")
    assert not any("canary weight 100%" in line for line in rollout.lines)


def test_no_traffic_is_never_promoted_and_hits_the_deadline(registry, stack):
    champion = registry.alias()
    stack.deploy_canary(registry.good)
    patient = {**SPEC, "progressDeadline": "5s", "checks": [{**check, "failureLimit": 100} for check in SPEC["checks"]]}
    rollout = Rollout(stack, registry, registry.good, spec=patient).start()
    outcome = rollout.result()
    assert_rolled_back(registry, stack, outcome, registry.good, champion, "progress deadline 5s exceeded at 10%")
    assert any("canary requests < minRequests 5" in line for line in rollout.lines)


def test_registry_unreachable_at_promotion_keeps_the_alias(registry, stack, traffic, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    champion, stable = registry.alias(), stack.stable
    stack.deploy_canary(registry.good)
    rollout = Rollout(stack, registry, registry.good).start()
    rollout.wait_for_line("canary weight 100%")
    dead = f"http://127.0.0.1:{free_port()}"
    rollout.recorder.client = MlflowClient(tracking_uri=dead, registry_uri=dead)
    outcome = rollout.result()
    assert outcome.status == ROLLED_BACK
    assert "registry unreachable at promotion, champion alias unchanged" in outcome.reason
    assert registry.alias(CHAMPION) == champion
    assert stack.stable is stable
    assert stable.alive()
    assert stack.canary is None
    assert registry.tags(registry.good)[STATUS] == "in_progress"  # the outcome could not be written either


def test_good_canary_is_promoted_without_dropped_requests(registry, stack, traffic):
    old_stable = stack.stable
    canary = stack.deploy_canary(registry.good)
    rollout = Rollout(stack, registry, registry.good).start()
    outcome = rollout.result()
    assert outcome.status == PROMOTED, rollout.lines
    assert registry.alias(CHAMPION) == registry.good
    tags = registry.tags(registry.good)
    assert tags[STATUS] == PROMOTED
    assert tags["plinth.rollout.local.history"].startswith("runs:/")
    assert stack.stable is canary
    assert canary.alive()
    assert not old_stable.alive()
    assert stack.router.weight == 0
    assert [line.split("] ")[1] for line in rollout.lines if "canary weight" in line] == [
        "canary weight 10%",
        "canary weight 50%",
        "canary weight 100%",
    ]
    assert failed_share(traffic.log) == 0.0
    assert MODEL in rollout.lines[0]
