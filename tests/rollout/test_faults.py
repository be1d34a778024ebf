"""Faults against real processes: every rollout ends safe.

One local stack (Prometheus, stable `bentoml serve`, router) serves every test; each test rolls out a
version of its own and leaves the stack as it found it (stable serving the champion, no canary, Prometheus
up). The promotion hands the stable role to its canary and moves `champion` with it, which keeps that
invariant. Any test can run alone or in any order.
"""

from collections.abc import Iterator

import pytest
from mlflow import MlflowClient

from components.common.tracking import CHAMPION, PROMOTED, REJECTED_TAG, ROLLED_BACK
from serving.embedded.local import LocalStack
from serving.embedded.processes import free_port
from serving.embedded.services import Chaos
from serving.embedded.traffic import TrafficGenerator
from serving.embedded.train_drill import held_out_instances
from serving.rollout.core.observe import CANARY, STABLE
from serving.rollout.edges.scrape_metrics import ScrapeSource
from tests.rollout.conftest import (
    SEED,
    SLOW_CANARY_MS,
    SPEC,
    Registry,
    Rollout,
    RouterCounts,
    dropped,
    needs_prometheus,
    start_stack,
    timed_out_share,
    traffic_for,
)

pytestmark = [pytest.mark.integration, needs_prometheus]
STATUS = "plinth.rollout.local.status"


@pytest.fixture(scope="module")
def shared_stack(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with start_stack(registry, tmp_path_factory.mktemp("stack")) as local:
        yield local


@pytest.fixture
def stack(shared_stack: LocalStack, registry: Registry) -> Iterator[LocalStack]:
    """The shared stack as every test expects it, and put back that way after the test."""
    assert shared_stack.prometheus is not None
    if not shared_stack.prometheus.alive():
        shared_stack.prometheus.start().wait_ready()
    assert shared_stack.canary is None
    assert shared_stack.stable is not None
    assert shared_stack.stable.alive()
    assert shared_stack.stable.version == registry.alias(CHAMPION)
    yield shared_stack
    if shared_stack.canary is not None:
        shared_stack.rollback()


@pytest.fixture
def traffic(stack: LocalStack) -> Iterator[TrafficGenerator]:
    generator = traffic_for(stack, held_out_instances(SEED))
    yield generator
    generator.stop()


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
    champion, version, before = registry.alias(), registry.copy(registry.good), RouterCounts.of(stack.router.stats)
    canary = stack.deploy_canary(version, Chaos(error_rate=0.5))
    outcome = Rollout(stack, registry, version).start().result()
    assert_rolled_back(registry, stack, outcome, version, champion, "success-rate failed 2 time(s)")
    assert not canary.alive()
    during = RouterCounts.of(stack.router.stats).since(before)
    assert during.answers[CANARY].get(500, 0) > 0
    # Every canary 5xx was retried on the stable, and the clients saw none of them.
    assert during.retried_on_stable == sum(n for code, n in during.answers[CANARY].items() if code >= 500)
    assert dropped(traffic.stop()) == []
    assert timed_out_share(traffic.log) < 0.02


def test_garbage_canary_answering_200_is_rolled_back_reading_metrics_directly(registry, stack, traffic):
    """The direct-/metrics fallback (no Prometheus in the loop) catches a model that answers 200 OK with garbage."""
    champion, version, before = registry.alias(), registry.copy(registry.garbage), RouterCounts.of(stack.router.stats)
    canary = stack.deploy_canary(version)
    direct = ScrapeSource({STABLE: stack.stable.url, CANARY: canary.url})
    outcome = Rollout(stack, registry, version, source=direct).start().result()
    assert_rolled_back(registry, stack, outcome, version, champion, "prediction-divergence failed")
    assert "on the P(class 1) histogram" in outcome.reason
    during = RouterCounts.of(stack.router.stats).since(before)
    assert {code for code, n in during.answers[CANARY].items() if n} == {200}


def test_slow_canary_is_rolled_back(registry, stack, traffic):
    """Until the first slowed answers arrive an interval has too few requests for any check; latency-p99 has
    the lowest failure limit here, so the rollback is its own, and the assertion below proves it measured."""
    champion, version = registry.alias(), registry.copy(registry.good)
    stack.deploy_canary(version, Chaos(latency_ms=SLOW_CANARY_MS))
    checks = [{**check, "failureLimit": 3 if check["name"] == "latency-p99" else 5} for check in SPEC["checks"]]
    rollout = Rollout(stack, registry, version, spec={**SPEC, "checks": checks}).start()
    outcome = rollout.result()
    assert_rolled_back(registry, stack, outcome, version, champion, "latency-p99 failed")
    # Failed on a measured p99 over its bounds, not only on intervals without enough data.
    assert any("latency-p99=fail" in line for line in rollout.lines), rollout.lines


def test_killed_canary_is_rolled_back_without_failed_requests(registry, stack, traffic):
    """The canary dies after its first step passed. On a loaded machine an interval can fall short of minRequests
    before that (counted against the checks): the limits here let the step pass first, so the kill is judged."""
    champion, version, before = registry.alias(), registry.copy(registry.good), RouterCounts.of(stack.router.stats)
    canary = stack.deploy_canary(version)
    patient = {**SPEC, "checks": [{**check, "failureLimit": 5} for check in SPEC["checks"]]}
    rollout = Rollout(stack, registry, version, spec=patient).start()
    rollout.wait_for_line("at 10%: advance")
    canary.kill()
    outcome = rollout.result()
    assert_rolled_back(registry, stack, outcome, version, champion, "no values found")
    assert RouterCounts.of(stack.router.stats).since(before).retried_on_stable > 0
    assert dropped(traffic.stop()) == []
    assert timed_out_share(traffic.log) < 0.02


def test_prometheus_killed_mid_rollout_never_promotes_and_once_restarted_does_not_answer_for_that_canary(
    registry, stack, traffic
):
    """The rollback removes the canary while Prometheus is down: its series get no staleness marker, and the
    restarted Prometheus must not let them answer for the next canary (gauges read with last_over_time)."""
    champion, gone = registry.alias(), registry.copy(registry.good)
    stack.deploy_canary(gone)
    rollout = Rollout(stack, registry, gone).start()
    rollout.wait_for_line("at 10%: advance")
    stack.prometheus.kill()
    outcome = rollout.result()
    assert_rolled_back(registry, stack, outcome, gone, champion, "prometheus at")
    assert not any("canary weight 100%" in line for line in rollout.lines)
    assert not stack.prometheus.alive()  # the canary left while Prometheus was down
    stack.prometheus.start().wait_ready()
    version = registry.copy(registry.good)
    stack.deploy_canary(version)
    observation = stack.source.observe(float(SPEC["interval"].removesuffix("s")))
    assert observation.error is None
    assert observation.canary.model_version == version


def test_no_traffic_is_never_promoted_and_hits_the_deadline(registry, stack):
    champion, version = registry.alias(), registry.copy(registry.good)
    stack.deploy_canary(version)
    patient = {**SPEC, "progressDeadline": "5s", "checks": [{**check, "failureLimit": 100} for check in SPEC["checks"]]}
    rollout = Rollout(stack, registry, version, spec=patient).start()
    outcome = rollout.result()
    assert_rolled_back(registry, stack, outcome, version, champion, "progress deadline 5s exceeded at 10%")
    assert any("canary requests < minRequests 5" in line for line in rollout.lines)


def test_registry_unreachable_at_promotion_keeps_the_alias(registry, stack, traffic, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    champion, version, stable = registry.alias(), registry.copy(registry.good), stack.stable
    stack.deploy_canary(version)
    rollout = Rollout(stack, registry, version).start()
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
    assert registry.tags(version)[STATUS] == "in_progress"  # the outcome could not be written either


def test_good_canary_is_promoted_without_dropped_requests(registry, stack, traffic):
    """The canary's process becomes the stable and `champion` moves to it: the shared stack stays as the
    `stack` fixture expects it (the stable serves the champion), so the other tests run before or after it."""
    old_stable, version = stack.stable, registry.copy(registry.good)
    canary = stack.deploy_canary(version)
    rollout = Rollout(stack, registry, version).start()
    outcome = rollout.result()
    log = traffic.stop()
    assert outcome.status == PROMOTED, rollout.lines
    assert registry.alias(CHAMPION) == version
    tags = registry.tags(version)
    assert tags[STATUS] == PROMOTED
    assert tags["plinth.rollout.local.history"].startswith("runs:/")
    assert stack.stable is canary
    assert canary.alive()
    assert old_stable is not None
    assert not old_stable.alive()
    assert stack.canary is None
    assert stack.router.weight == 0
    assert [line.split("] ")[1] for line in rollout.lines if "canary weight" in line] == [
        "canary weight 10%",
        "canary weight 50%",
        "canary weight 100%",
    ]
    # The old stable drained before it stopped: no client saw a failure at the handover.
    assert dropped(log) == []
    assert timed_out_share(log) < 0.01
    assert f"[{registry.model} v{version}]" in rollout.lines[0]
