"""The same analysis for every task, on real processes: garbage is rolled back, a better model promoted.

Per task one registry (champion on 30 % of the rows, a better challenger on all of them, a garbage model
fitted on shuffled targets) and one stack serving the champion, with traffic of the rows the stable was
trained on (what `make rollout` sends by default). Each test rolls out a version of its own and asserts
against the state it started from, so they run alone or in any order.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from components.common.tracking import CHAMPION, PROMOTED, ROLLED_BACK
from serving.embedded.local import LocalStack
from serving.embedded.traffic import Answer, TrafficGenerator, TrafficLog
from serving.embedded.train_drill import DrillData
from serving.rollout.core.observe import CANARY, STABLE, VALUE_BUCKET
from serving.rollout.edges.inspect_model import inspect_version
from serving.rollout.edges.sample_rows import traffic_rows
from serving.rollout.edges.scrape_metrics import ScrapeSource
from tests.rollout.conftest import Registry, Rollout, dropped, needs_prometheus, start_stack, traffic_for

pytestmark = [pytest.mark.integration, needs_prometheus]


@dataclass(frozen=True)
class Case:
    """One task's dataset and what its rollback names."""

    task: str
    data: DrillData
    garbage_distribution: tuple[str, ...]


CASES = {
    "multiclass": Case("multiclass", DrillData("sklearn:wine"), ("P(class", "predicted class distribution")),
    "regression": Case("regression", DrillData("sklearn:diabetes"), ("predicted value histogram",)),
}


@dataclass
class TaskStack:
    """One task's registry, the stack serving its champion, and the traffic through it."""

    case: Case
    registry: Registry
    stack: LocalStack
    traffic: TrafficGenerator


@pytest.fixture(scope="module", params=sorted(CASES))
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TaskStack]:
    case = CASES[request.param]
    registry = Registry.train(tmp_path_factory.mktemp(case.task), f"rollout-{case.task}", case.data)
    stable = inspect_version(registry.client, registry.uri, registry.model, registry.champion)
    assert stable.task == case.task
    rows, origin = traffic_rows(stable)
    assert origin == f"rows of {case.data.source}, the data v{registry.champion} was trained on"
    with start_stack(registry, tmp_path_factory.mktemp(f"{case.task}-stack")) as stack:
        traffic = traffic_for(stack, rows)
        try:
            yield TaskStack(case, registry, stack, traffic)
        finally:
            traffic.stop()


def bucket_bounds(url: str) -> set[str]:
    """Return the `le` bounds of a service's predicted-value histogram, read from its /metrics page."""
    text = httpx.get(f"{url}/metrics", timeout=5.0).text
    return {
        sample.labels["le"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == VALUE_BUCKET
    }


def test_garbage_model_is_rolled_back_by_prediction_divergence(served):
    registry, stack = served.registry, served.stack
    champion, version = registry.alias(), registry.copy(registry.garbage)
    answered_before = len(served.traffic.log.answers)
    canary = stack.deploy_canary(version)
    assert stack.stable is not None
    if served.case.task == "regression":
        # Each model's value buckets are its own target deciles: the analysis aligns different bounds.
        assert bucket_bounds(canary.url) != bucket_bounds(stack.stable.url)
    outcome = Rollout(stack, registry, version).start().result()
    assert outcome.status == ROLLED_BACK, outcome.reason
    assert "prediction-divergence failed" in outcome.reason
    assert any(name in outcome.reason for name in served.case.garbage_distribution), outcome.reason
    assert registry.alias(CHAMPION) == champion
    assert stack.canary is None
    assert dropped_since(served, answered_before) == []


def test_garbage_model_is_rolled_back_reading_metrics_directly(served):
    """The direct-/metrics source reads the same per-task distributions as the PromQL one."""
    registry, stack = served.registry, served.stack
    champion, version = registry.alias(), registry.copy(registry.garbage)
    canary = stack.deploy_canary(version)
    assert stack.stable is not None
    direct = ScrapeSource({STABLE: stack.stable.url, CANARY: canary.url})
    outcome = Rollout(stack, registry, version, source=direct).start().result()
    assert outcome.status == ROLLED_BACK, outcome.reason
    assert "prediction-divergence failed" in outcome.reason
    assert registry.alias(CHAMPION) == champion


def test_better_model_is_promoted(served):
    registry, stack = served.registry, served.stack
    version = registry.copy(registry.good)
    answered_before = len(served.traffic.log.answers)
    canary = stack.deploy_canary(version)
    rollout = Rollout(stack, registry, version).start()
    outcome = rollout.result()
    assert outcome.status == PROMOTED, rollout.lines
    assert registry.alias(CHAMPION) == version
    assert stack.stable is canary
    judged = [line for line in rollout.lines if "prediction-divergence=pass" in line]
    assert judged, rollout.lines
    assert dropped_since(served, answered_before) == []


def dropped_since(served: TaskStack, start: int) -> list[Answer]:
    """Return the requests that failed for clients since answer number `start`."""
    return dropped(TrafficLog(served.traffic.log.answers[start:]))
