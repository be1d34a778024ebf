"""The reconcile loop where the cluster or the registry does not cooperate: every path ends in a defined state.

Each scenario runs on the chart's objects behind the strict API server stand-in (tests/apiserver: defaults,
validation, patch semantics, the chart's admission policy in front of every controller write) and a real
registry, with one clock for the controller and the stand-in, moved by the test. What ends a rollout that can
never finish by itself: the progress deadline (checked first on every tick), three refusals in a row that no
retry can change, a Deployment that says it is stuck. A rollback the cluster refuses is recorded and said as
BLOCKED. Each refusal is counted, and said once as a log line and a Warning Event.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import REGISTRY
from urllib3.exceptions import MaxRetryError

from components.common.tracking import PROMOTED, serving_alias
from serving.rollout.core.reconcile import REFUSAL_LIMIT
from serving.rollout.core.spec import ShadowSpec
from serving.rollout.tests.fake_cluster import ADMIN, before_the_mirror_fix, chart_objects
from serving.rollout.tests.http_backend import wait_until
from tests.apiserver.resources import CONFIGMAP
from tests.rollout.test_reconcile import CANARY, ENV, NS, ROUTE, SPEC, STABLE, World
from tests.rollout.versions import Versions

pytestmark = pytest.mark.integration

DEADLINE = 120.0
FAULT_SPEC = replace(SPEC, progress_deadline=DEADLINE)
SHADOW_SPEC = replace(FAULT_SPEC, shadow=ShadowSpec(enabled=True, duration=5.0, min_requests=10))
# What the stand-in's Deployments time out on (progressDeadlineSeconds, the API server's default of 600).
DEPLOYMENT_DEADLINE = 600.0


class Clock:
    """The one clock of a scenario: the controller reads it, and moving it moves the stand-in's too."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.world: World | None = None

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        if self.world is not None:
            self.world.cluster.server.advance(seconds)


@pytest.fixture(scope="module")
def registry(versions: Versions) -> Versions:
    """The session's reconcile registry (conftest.py); `make_world` resets it after each test."""
    return versions


@pytest.fixture
def make_world(registry: Versions) -> Iterator[Callable[..., tuple[World, Clock]]]:
    """A world on the fault spec whose clock the test moves; the registry is reset afterwards."""

    def make(spec: Any = FAULT_SPEC, manifests: list[dict[str, Any]] | None = None) -> tuple[World, Clock]:
        clock = Clock()
        world = World(registry, spec=spec, manifests=manifests, clock=clock)
        clock.world = world
        return world, clock

    yield make
    registry.forget_rollouts()


def refusals(code: int) -> float:
    return REGISTRY.get_sample_value("plinth_rollout_refusals_total", {"code": str(code)}) or 0.0


def tick_until(world: World, clock: Clock, phase: str, step: float = 1.0, limit: int = 30) -> int:
    """Tick (the clock moving one interval each time) until the record reaches `phase`; return the ticks taken."""
    for done in range(1, limit + 1):
        clock.advance(step)
        world.controller.tick()
        if world.phase() == phase:
            return done
    raise AssertionError(f"not {phase} after {limit} ticks: {world.cluster.state()}\n" + "\n".join(world.lines))


def ticks(world: World, clock: Clock, count: int) -> None:
    """`count` intervals: the clock moves one second, the controller ticks."""
    for _ in range(count):
        clock.advance(1)
        world.controller.tick()


def at_first_step(world: World, registry: Versions) -> None:
    """Git desires the good version; one tick later the canary has the first step's traffic."""
    world.desire(registry.good)
    world.controller.tick()
    assert world.cluster.weights()[CANARY] == SPEC.steps[0]


def promoting_slowly(world: World, clock: Clock, registry: Versions) -> None:
    """The good version passes every step while the stable's new pods come up one per thousand reads."""
    world.desire(registry.good)
    world.cluster.server.roll_slowly(NS, STABLE, reads_per_pod=1_000)
    tick_until(world, clock, "promoting")


def promoted_after_shadow(world: World, clock: Clock, registry: Versions) -> None:
    """The shadow phase lasts its duration, then the good version steps up to promotion, nothing refused."""
    clock.advance(SHADOW_SPEC.shadow.duration)
    tick_until(world, clock, "succeeded")
    world.assert_serving(registry.good)
    assert "Refused" not in world.cluster.reasons()


def controller_requests(world: World) -> int:
    return len(world.cluster.requests)


def test_the_shadow_phase_the_old_policy_denied_now_ends_instead_of_looping(
    make_world: Callable[..., tuple[World, Clock]], registry: Versions
) -> None:
    """The issue's bug end to end: defaulted mirror, the pre-fix policy denies it; the rollout must still end."""
    world, clock = make_world(SHADOW_SPEC, before_the_mirror_fix(list(chart_objects())))
    before = refusals(403)
    world.desire(registry.good)
    ticks = tick_until(world, clock, "failed")
    assert ticks == REFUSAL_LIMIT
    record = world.cluster.state()
    assert record["message"].startswith(f"the cluster refused patch HTTPRoute {ROUTE}: HTTP 403: ")
    assert f"ValidatingAdmissionPolicy '{NS}-{ROUTE}-rollout'" in record["message"]
    assert "denied request" in record["message"]
    assert record["message"].endswith(f"({REFUSAL_LIMIT} times in a row)")
    assert registry.good in record["rejected"]
    assert world.cluster.reasons().count("Refused") == 1, "said once, not once per tick"
    assert sum(f"{ENV}] the cluster refused patch HTTPRoute" in line for line in world.lines) == 1
    assert refusals(403) - before == REFUSAL_LIMIT
    assert "RolledBack" in world.cluster.reasons()
    world.assert_serving(registry.champion)
    assert world.cluster.mirrored() == []


def test_the_fixed_policy_lets_the_shadow_phase_through_on_the_defaulted_route(
    make_world: Callable[..., tuple[World, Clock]], registry: Versions
) -> None:
    world, clock = make_world(SHADOW_SPEC)
    world.desire(registry.good)
    ticks(world, clock, 1)
    assert world.cluster.mirrored() == [CANARY]
    for rule in world.cluster.route["spec"]["rules"]:  # every door of the route mirrors
        stored = rule["filters"][-1]["requestMirror"]["backendRef"]
        assert (stored["group"], stored["kind"]) == ("", "Service"), "the stand-in defaults as the API server does"
    promoted_after_shadow(world, clock, registry)


def test_a_canary_that_never_becomes_ready_gets_no_traffic_and_ends_when_its_deployment_says_it_is_stuck(
    make_world: Callable[..., tuple[World, Clock]], registry: Versions
) -> None:
    world, clock = make_world(replace(FAULT_SPEC, progress_deadline=2 * DEPLOYMENT_DEADLINE))
    world.desire(registry.good)
    world.cluster.server.never_ready(NS, CANARY)
    sent = controller_requests(world)
    ticks(world, clock, 3)
    record = world.cluster.state()
    assert (record["phase"], record["checked"]) == ("progressing", False)
    assert world.cluster.weights()[CANARY] == 0
    assert world.cluster.mirrored() == []
    assert sum("waiting for the canary's pods to be ready" in line for line in world.lines) == 1
    # Nothing waits inside a tick: a few reads and no polling loop, however long the pods take.
    assert controller_requests(world) - sent <= 3 * 8
    clock.advance(DEPLOYMENT_DEADLINE)  # the Deployment controller marks it ProgressDeadlineExceeded
    world.controller.tick()
    record = world.cluster.state()
    assert record["phase"] == "failed"
    assert record["message"].startswith(f"the canary never became ready: Deployment {CANARY}: ProgressDeadlineExceeded")
    world.assert_serving(registry.champion)


def test_the_progress_deadline_ends_a_canary_that_is_still_starting(
    make_world: Callable[..., tuple[World, Clock]], registry: Versions
) -> None:
    world, clock = make_world()
    world.desire(registry.good)
    world.cluster.server.roll_slowly(NS, CANARY, reads_per_pod=1_000)
    world.controller.tick()
    clock.advance(DEADLINE + 1)
    world.controller.tick()
    record = world.cluster.state()
    assert record["phase"] == "failed"
    assert (
        record["message"] == f"progress deadline {DEADLINE:g}s exceeded before any traffic (the canary was not ready)"
    )
    world.assert_serving(registry.champion)


def test_a_write_refused_for_a_passing_reason_ends_at_the_deadline_naming_it(
    make_world: Callable[..., tuple[World, Clock]], registry: Versions
) -> None:
    world, clock = make_world()
    at_first_step(world, registry)
    world.cluster.server.deny("patch", "httproutes", ROUTE, code=503, times=1_000)
    before = refusals(503)
    ticks(world, clock, 5)  # the analysis advances the step; the route patch is refused, retried every interval
    assert world.phase() == "progressing"
    clock.advance(DEADLINE)
    world.cluster.server.clear_denials()
    world.controller.tick()
    record = world.cluster.state()
    assert record["phase"] == "failed"
    assert record["message"].startswith(f"progress deadline {DEADLINE:g}s exceeded at ")
    assert f"the cluster refused patch HTTPRoute {ROUTE}: HTTP 503" in record["message"]
    assert refusals(503) - before >= 4
    assert world.cluster.reasons().count("Refused") == 1
    world.assert_serving(registry.champion)


def test_a_rollback_the_cluster_refuses_is_recorded_and_said_as_blocked_then_repaired(
    make_world: Callable[..., tuple[World, Clock]], registry: Versions
) -> None:
    world, clock = make_world()
    at_first_step(world, registry)
    world.cluster.server.deny("patch", "httproutes", ROUTE, code=403)  # RBAC taken away, say
    tick_until(world, clock, "failed")
    record = world.cluster.state()
    assert "BLOCKED: patch HTTPRoute" in record["message"]
    assert registry.good in record["rejected"]
    assert "RolloutBlocked" in world.cluster.reasons()
    assert world.cluster.weights()[CANARY] == SPEC.steps[0], "the cluster kept the canary's traffic"
    said = world.cluster.reasons().count("Refused")
    ticks(world, clock, 3)  # idle ticks keep trying to repair the route, without saying it again
    assert world.cluster.reasons().count("Refused") == said
    assert world.phase() == "failed", "a rollback on record stays one"
    world.cluster.server.clear_denials()
    clock.advance(1)
    world.controller.tick()
    world.assert_serving(registry.champion)


def test_a_stable_that_never_rolls_out_is_rolled_back_and_the_record_names_the_old_version(
    make_world: Callable[..., tuple[World, Clock]], registry: Versions
) -> None:
    world, clock = make_world(replace(FAULT_SPEC, progress_deadline=2 * DEPLOYMENT_DEADLINE))
    world.desire(registry.good)
    world.cluster.server.never_ready(NS, STABLE)
    tick_until(world, clock, "promoting")
    ticks(world, clock, 2)
    assert world.phase() == "promoting"
    assert world.cluster.weights()[CANARY] == 100, "the canary serves until the stable's pods are all there"
    assert world.cluster.state()["stableVersion"] == registry.good
    clock.advance(DEPLOYMENT_DEADLINE)
    world.controller.tick()
    record = world.cluster.state()
    assert record["phase"] == "failed"
    assert record["message"].startswith(f"the stable did not roll out v{registry.good}: Deployment {STABLE}")
    assert record["stableVersion"] == registry.champion
    annotations = world.cluster.deployments[STABLE]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["plinth.dev/served-version"] == registry.champion
    world.cluster.server.ready_now(NS, STABLE)
    world.assert_serving(registry.champion)
    assert registry.alias(serving_alias(ENV)) == registry.champion


def test_a_controller_restarted_while_the_stable_rolls_out_finishes_the_promotion_once(
    make_world: Callable[..., tuple[World, Clock]], registry: Versions
) -> None:
    world, clock = make_world()
    promoting_slowly(world, clock, registry)
    stable_rollouts = world.cluster.rollouts[STABLE]
    world.restart()  # a new controller pod: the record says promoting
    clock.advance(1)
    world.controller.tick()
    assert world.phase() == "promoting"
    world.cluster.server.ready_now(NS, STABLE)
    tick_until(world, clock, "succeeded")
    world.assert_serving(registry.good)
    assert world.cluster.rollouts[STABLE] == stable_rollouts, "the stamp is the version: one stable rollout"
    assert registry.tags(registry.good)[f"plinth.rollout.{ENV}.status"] == PROMOTED


def test_a_controller_upgraded_mid_promotion_gives_the_promotion_its_own_deadline(
    make_world: Callable[..., tuple[World, Clock]], registry: Versions
) -> None:
    """A record written before promotions had their own start time is not rolled back for lacking one."""
    world, clock = make_world()
    promoting_slowly(world, clock, registry)
    status = json.loads(world.cluster.configmaps[world.cluster.state_name]["data"]["status"])
    del status["promoting_since"]  # as the previous controller wrote it
    body = {"data": {"status": json.dumps(status)}}
    world.cluster.call("PATCH", CONFIGMAP, world.cluster.state_name, body, "application/merge-patch+json", ADMIN)
    world.restart()
    clock.now += DEADLINE * 10  # long past the rollout's own start (the stand-in's Deployments unmoved)
    world.controller.tick()
    assert world.phase() == "promoting"
    assert world.cluster.state()["promoting_since"] == clock.now


def test_no_desired_version_is_said_once_and_nothing_is_written(
    make_world: Callable[..., tuple[World, Clock]], registry: Versions
) -> None:
    world, clock = make_world()
    world.cluster.set_desired(None)
    registry.client.delete_registered_model_alias("reconciled", "challenger")
    try:
        sent = len(world.cluster.requests)
        for _ in range(3):
            clock.advance(1)
            world.controller.tick()
        writes = [r for r in world.cluster.requests[sent:] if r[0] != "GET"]
        assert writes == []
        assert world.cluster.state() == {}
        assert sum("no desired version" in line for line in world.lines) == 1
    finally:
        registry.client.set_registered_model_alias("reconciled", "challenger", registry.good)


def test_the_registry_down_when_an_outcome_is_recorded_is_written_on_a_later_tick(
    make_world: Callable[..., tuple[World, Clock]], registry: Versions, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, clock = make_world()
    world.desire(registry.good)

    def down(*_: Any, **__: Any) -> None:
        raise ConnectionError("registry unreachable")

    monkeypatch.setattr(registry.client, "set_registered_model_alias", down)
    tick_until(world, clock, "succeeded")
    world.assert_serving(registry.good)  # the cluster acted: Git decided, the analysis passed
    assert world.cluster.state()["outcome"]["recorded"] is False
    assert registry.alias(serving_alias(ENV)) != registry.good
    assert any(f"the registry did not record v{registry.good} promoted" in line for line in world.lines)
    monkeypatch.undo()
    clock.advance(1)
    world.controller.tick()
    assert world.cluster.state()["outcome"]["recorded"] is True
    assert registry.alias(serving_alias(ENV)) == registry.good


def test_a_gitops_agents_server_side_apply_in_the_shadow_phase_is_repaired_not_judged(
    make_world: Callable[..., tuple[World, Clock]], registry: Versions
) -> None:
    world, clock = make_world(SHADOW_SPEC)
    world.desire(registry.good)
    ticks(world, clock, 1)
    assert world.cluster.mirrored() == [CANARY]
    route = next(obj for obj in chart_objects() if obj["kind"] == "HTTPRoute")
    world.cluster.apply([copy.deepcopy(route)])  # Flux: kubectl apply --server-side --force-conflicts of Git
    assert world.cluster.mirrored() == []
    managers = {entry["manager"] for entry in world.cluster.route["metadata"]["managedFields"]}
    assert "kustomize-controller" in managers
    judged = world.judged()
    clock.advance(1)
    world.controller.tick()
    assert world.cluster.mirrored() == [CANARY]
    assert world.judged() == judged, "the interval the agent reset is not judged"
    assert any("(a re-apply?)" in line for line in world.lines)
    world.cluster.apply([copy.deepcopy(route)])  # the next sync: applied again, repaired again
    promoted_after_shadow(world, clock, registry)


def test_an_api_server_briefly_unreachable_costs_ticks_not_the_rollout(
    make_world: Callable[..., tuple[World, Clock]], registry: Versions
) -> None:
    world, clock = make_world()
    world.desire(registry.good)
    world.controller.tick()
    record = world.cluster.state()
    world.cluster.server.unreachable(2)
    for _ in range(2):
        clock.advance(1)
        with pytest.raises(MaxRetryError):
            world.controller.tick()
    assert world.cluster.state() == record, "nothing was written or decided while it was away"
    tick_until(world, clock, "succeeded")
    world.assert_serving(registry.good)


def test_the_loop_survives_a_failed_tick_and_stops_on_its_event(
    make_world: Callable[..., tuple[World, Clock]], registry: Versions
) -> None:
    """run(): an unreachable API server is a logged tick, not a crash; a stop ends the loop between ticks."""
    world, _ = make_world(replace(FAULT_SPEC, interval=0.01))
    world.cluster.server.unreachable(3)
    stop = threading.Event()
    world.controller.stop = stop
    runner = threading.Thread(target=world.controller.run)
    runner.start()
    try:
        assert wait_until(lambda: world.phase() == "initialized", timeout=30)
    finally:
        stop.set()
        runner.join(timeout=30)
    assert not runner.is_alive()
    assert sum("reconcile failed, retrying next interval: MaxRetryError" in line for line in world.lines) >= 1
    world.assert_serving(registry.champion)
