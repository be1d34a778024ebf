"""The in-cluster reconcile loop through its lifecycle: restarts, rollbacks, retries, reverts, conflicts.

The cluster is the stateful stand-in under the real kubernetes client (serving/rollout/tests/fake_cluster.py)
and the registry is a real MLflow store with real registered models. Metrics come from a scripted source
that reports what the pods the fake cluster runs would report (Prometheus and the services are exercised by
tests/rollout/test_faults.py and test_tasks.py). Each tick is driven by the test, so nothing waits on a
clock; "a controller restart" is a new Reconciler over the same cluster and registry, which is all a new
pod has.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from components.common import signing
from components.common.tracking import CHAMPION, REJECTED_TAG, serving_alias
from serving.gitops import overlay
from serving.gitops.registry import Registry
from serving.gitops.tools import find_tool
from serving.rollout.cli import build_parser
from serving.rollout.core.observe import Observation, Predictions, TrackSample
from serving.rollout.core.reconcile import Reconciler, StateConflict
from serving.rollout.core.spec import AnalysisSpec, ShadowSpec, parse_spec
from serving.rollout.core.state import RETRY_ANNOTATION, State
from serving.rollout.edges.kube import ClusterEdge
from serving.rollout.edges.mlflow_registry import MlflowRegistry
from serving.rollout.retry import RetryRefused, request_retry, retry_target
from serving.rollout.status import Coordinates, Row, Status
from serving.rollout.status import main as status_main
from serving.rollout.tests.fake_cluster import FakeCluster
from tests.rollout.versions import MODEL, Versions

pytestmark = pytest.mark.integration

# The chart's objects as `helm template release helm/plinth-serving` renders them (FakeCluster.from_chart): every
# scenario runs on them, with the chart's ValidatingAdmissionPolicy in front of every controller write.
NS, ROUTE, STATE = "plinth", "release-plinth-serving", "release-plinth-serving-rollout-state"
STABLE, CANARY = f"{ROUTE}-stable", f"{ROUTE}-canary"
ROUTE_PATH = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/{ROUTE}"

ENV = "staging"
SPEC = parse_spec(
    {
        "steps": [25, 50, 100],
        "interval": "1s",
        "minRequests": 10,
        "progressDeadline": "1h",
        "shadow": {"enabled": False},  # the weighted steps; shadow scenarios turn it on
        "checks": [
            {"name": "success-rate", "min": 0.99, "failureLimit": 2},
            {"name": "prediction-divergence", "max": 0.2, "minPredictions": 20, "failureLimit": 2},
            {"name": "input-drift", "max": 0.25, "minPredictions": 20, "failureLimit": 2},
        ],
    }
)


class ScriptedSource:
    """What the pods the fake cluster runs would report over one interval of 200 requests split by the route.

    `bad` versions fail half their requests. A track the route sends nothing reports zero requests and no
    predictions, as Prometheus would (at 100 % canary the stable is idle).
    """

    def __init__(self, cluster: FakeCluster, bad: set[str]) -> None:
        self.cluster, self.bad = cluster, bad

    def start(self) -> None:
        """Nothing to baseline: every interval is reported afresh."""

    def track(self, deployment: str) -> TrackSample:
        version = self.cluster.serving[deployment]
        if version is None:
            return TrackSample(missing=f"no {deployment} pods")
        # A mirrored canary answers a copy of every request the stable answers (the shadow phase).
        mirrored = deployment == self.cluster.canary and deployment in self.cluster.mirrored()
        requests = 2.0 * (100 if mirrored else self.cluster.weights()[deployment])
        return TrackSample(
            requests=requests,
            errors=requests / 2 if version in self.bad else 0.0,
            p99_seconds=0.02,
            predictions=Predictions(classes={"0": 0.4 * requests, "1": 0.6 * requests}),
            input_drift=0.05,
            model_version=version,
            task="binary",
            drift="on",
        )

    def observe(self, window_seconds: float) -> Observation:
        return Observation(stable=self.track(self.cluster.stable), canary=self.track(self.cluster.canary))


@pytest.fixture(scope="module")
def registry(versions: Versions) -> Versions:
    """The session's reconcile registry (tests/rollout/conftest.py); each test's `world` resets it afterwards."""
    return versions


@pytest.fixture
def world(registry: Versions) -> Iterator[World]:
    world = World(registry)
    yield world
    registry.forget_rollouts()


class World:
    """One environment: the fake cluster, the registry, and controllers that come and go."""

    def __init__(
        self,
        registry: Versions,
        spec: AnalysisSpec = SPEC,
        pre_traffic: Callable[[str], str | None] | None = None,
        manifests: list[dict] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry, self.spec, self.pre_traffic, self.clock = registry, spec, pre_traffic, clock
        self.cluster = FakeCluster(manifests=manifests) if manifests else FakeCluster.from_chart()
        assert (self.cluster.namespace, self.cluster.route_name, self.cluster.state_name) == (NS, ROUTE, STATE)
        assert (self.cluster.stable, self.cluster.canary) == (STABLE, CANARY)
        assert self.cluster.server.policies, "the chart's admission policy reviews every controller write"
        self.cluster.set_desired(registry.champion)
        self.source = ScriptedSource(self.cluster, bad={registry.garbage})
        self.lines: list[str] = []
        self.controller = self.restart()

    def restart(self) -> Reconciler:
        """A new controller pod: nothing carried over but the cluster and the registry."""
        edge = ClusterEdge(self.cluster.api(), NS, ROUTE, STABLE, CANARY, CANARY, STABLE, STATE)
        # The public key beside the store; unsigned versions (the drill models) are allowed, as on one machine.
        key = signing.verify_key(self.registry.uri, env={})
        records = MlflowRegistry(self.registry.client, self.registry.uri, MODEL, ENV, key, require_signature=False)
        self.controller = Reconciler(
            self.spec,
            edge,
            self.source,
            records,
            MODEL,
            ENV,
            on_line=self.lines.append,
            pre_traffic=self.pre_traffic,
            clock=self.clock,
        )
        return self.controller

    def desire(self, version: str) -> None:
        """The environment initialized on the champion, then Git desires `version`."""
        self.ticks(1)
        self.cluster.set_desired(version)

    def ticks(self, count: int) -> None:
        for _ in range(count):
            self.controller.tick()

    def until(self, phase: str, limit: int = 12) -> int:
        """Tick until the record reaches `phase`; return how many ticks it took."""
        for done in range(1, limit + 1):
            self.controller.tick()
            if self.phase() == phase:
                return done
        raise AssertionError(f"not {phase} after {limit} ticks: {self.cluster.state()}\n" + "\n".join(self.lines))

    def phase(self) -> str:
        return self.cluster.state().get("phase", "")

    def started(self) -> int:
        return self.cluster.reasons().count("RolloutStarted")

    def judged(self) -> int:
        return sum(" advance (" in line or " hold (" in line or " rollback (" in line for line in self.lines)

    def assert_serving(self, version: str) -> None:
        """The stable serves `version`, all traffic on it, no canary pods."""
        assert self.cluster.serving[STABLE] == version
        assert self.cluster.state().get("stableVersion") == version
        assert self.cluster.weights() == {STABLE: 100, CANARY: 0}
        assert self.cluster.serving[CANARY] is None


def test_the_first_version_is_served_without_analysis_and_recorded(world: World):
    registry = world.registry
    world.ticks(1)
    world.assert_serving(registry.champion)
    assert world.phase() == "initialized"
    assert world.started() == 0
    assert registry.alias(serving_alias(ENV)) == registry.champion
    assert registry.tags(registry.champion)[f"plinth.rollout.{ENV}.status"] == "initialized"


def test_a_new_desired_version_is_promoted_and_nothing_reruns_across_restarts(world: World):
    registry = world.registry
    world.desire(registry.good)
    judged = world.until("succeeded")
    assert judged == len(SPEC.steps) + 1  # the start, then one passing interval per step
    world.assert_serving(registry.good)
    assert registry.alias(CHAMPION) == registry.good
    assert registry.alias(serving_alias(ENV)) == registry.good
    assert registry.tags(registry.good)[f"plinth.rollout.{ENV}.status"] == "promoted"
    row = status_row(world)
    assert (row.serving, row.canary, row.phase) == (f"v{registry.good}", "-", "succeeded")
    assert row.outcome.startswith(f"v{registry.good} promoted")
    stable_rollouts, record = world.cluster.rollouts[STABLE], world.cluster.state()
    for _ in range(3):
        world.restart()
        world.ticks(2)
    assert world.started() == 1
    assert world.cluster.rollouts[STABLE] == stable_rollouts
    assert world.cluster.state() == record
    # An evicted stable pod reloads the promoted version from the record, whatever the aliases say meanwhile.
    registry.client.set_registered_model_alias(MODEL, CHAMPION, registry.champion)
    world.cluster.restart_pods(STABLE)
    world.assert_serving(registry.good)


def test_a_bad_canary_stays_rolled_back_across_restarts_until_one_retry(world: World):
    registry = world.registry
    world.desire(registry.garbage)
    world.until("failed")
    world.assert_serving(registry.champion)
    tags = registry.tags(registry.garbage)
    assert tags[f"plinth.rollout.{ENV}.status"] == "rolled_back"
    assert tags[REJECTED_TAG] == "true"
    assert "success-rate failed 2 time(s)" in tags[f"plinth.rollout.{ENV}.reason"]
    for _ in range(3):
        world.restart()
        world.ticks(2)
    assert world.started() == 1
    assert world.phase() == "failed"
    assert any("stays rolled back until a retry" in line for line in world.lines)
    world.cluster.annotate_state(RETRY_ANNOTATION, registry.garbage)
    world.ticks(1)
    assert world.started() == 2
    assert RETRY_ANNOTATION not in world.cluster.configmaps[STATE]["metadata"].get("annotations", {})
    world.until("failed")
    world.ticks(3)
    assert world.started() == 2
    world.assert_serving(registry.champion)


def test_a_controller_killed_mid_rollout_resumes_on_fresh_evidence(world: World):
    registry = world.registry
    world.desire(registry.good)
    world.ticks(1)
    assert world.cluster.weights()[CANARY] == 25
    # Killed between writing the record and patching the route: the route lags the record.
    world.cluster.set_weights(stable=100, canary=0)
    world.restart()
    world.ticks(1)
    assert world.cluster.weights()[CANARY] == 25
    assert world.judged() == 0
    assert world.cluster.state()["resumed"] == 1
    assert any(note.startswith("resumed at 25%") for note in status_row(world).notes)
    world.until("succeeded")
    assert world.judged() == len(SPEC.steps)  # every step judged again after the restart, none skipped
    world.assert_serving(registry.good)
    assert world.started() == 1


def test_a_controller_restarted_at_the_last_step_promotes_on_the_baseline_it_recorded(world: World):
    registry = world.registry
    world.desire(registry.good)
    world.ticks(len(SPEC.steps))  # started, then advanced through every step but the last
    assert world.cluster.weights()[CANARY] == 100
    world.restart()  # at 100 % the stable gets no traffic: its predictions live only in the record
    world.until("succeeded")
    world.assert_serving(registry.good)


def test_a_restart_never_forgives_a_failed_check(world: World):
    registry = world.registry
    world.desire(registry.garbage)
    world.ticks(2)  # started, then one failed interval
    assert world.cluster.state()["failed_checks"]["success-rate"] == 1
    world.restart()
    world.ticks(1)  # resumed
    world.ticks(1)  # the second failure overall reaches failureLimit 2
    assert world.phase() == "failed"
    world.assert_serving(registry.champion)


def test_a_stop_leaves_the_rollout_to_the_next_controller(world: World):
    registry = world.registry
    world.desire(registry.good)
    stop = threading.Event()
    world.controller.stop = stop
    runner = threading.Thread(target=world.controller.run)
    runner.start()
    try:
        world_state = None
        for _ in range(200):
            world_state = world.cluster.state()
            if world_state and world_state.get("phase") == "progressing":
                break
            stop.wait(0.01)
    finally:
        stop.set()
        runner.join(timeout=30)
    assert not runner.is_alive()
    assert world.phase() == "progressing"
    assert registry.tags(registry.good)[f"plinth.rollout.{ENV}.status"] == "in_progress"
    assert REJECTED_TAG not in registry.tags(registry.good)
    world.restart()
    world.until("succeeded")
    world.assert_serving(registry.good)


def test_reverting_desired_mid_analysis_cancels_without_rejecting(world: World):
    registry = world.registry
    world.desire(registry.good)
    world.ticks(2)
    assert world.cluster.weights()[CANARY] == 50
    world.cluster.set_desired(registry.champion)
    world.ticks(1)
    assert world.phase() == "canceled"
    assert status_row(world).outcome.startswith(f"v{registry.good} canceled")
    world.assert_serving(registry.champion)
    assert registry.tags(registry.good)[f"plinth.rollout.{ENV}.status"] == "canceled"
    assert registry.good not in world.cluster.state()["rejected"]
    world.ticks(2)
    assert world.started() == 1
    # Git changes its mind again: the version was never rejected, so it is simply rolled out.
    world.cluster.set_desired(registry.good)
    world.until("succeeded")
    world.assert_serving(registry.good)


def test_conflicting_edits_are_redone_on_the_fresh_objects(world: World):
    registry = world.registry
    world.desire(registry.good)
    world.ticks(1)
    world.cluster.route_conflicts = 1
    world.ticks(1)
    assert world.cluster.weights()[CANARY] == 50
    world.cluster.state_conflicts = 1
    with pytest.raises(StateConflict):
        world.ticks(1)
    assert world.cluster.weights()[CANARY] == 50
    world.until("succeeded")
    world.assert_serving(registry.good)


def test_a_lost_record_is_recovered_from_the_stable_not_reinitialized(world: World):
    registry = world.registry
    world.desire(registry.good)
    world.until("succeeded")
    del world.cluster.configmaps[STATE]
    world.cluster.set_desired(registry.garbage)
    world.restart()
    world.ticks(1)
    assert world.cluster.state()["stableVersion"] == registry.good
    assert world.cluster.serving[STABLE] == registry.good
    world.until("failed")
    world.assert_serving(registry.good)


def test_a_canary_of_another_task_is_refused_before_any_traffic(world: World):
    registry = world.registry
    world.desire(registry.regressor)
    world.ticks(1)
    assert world.phase() == "failed"
    assert "solves another task" in world.cluster.state()["rejected"][registry.regressor]
    scale_ups = [r for r in world.cluster.requests if r[1].endswith(f"/{CANARY}/scale") and r[2]["spec"]["replicas"]]
    assert scale_ups == []
    world.assert_serving(registry.champion)


def test_a_canary_whose_files_changed_after_registration_is_refused_before_any_traffic(world: World):
    registry = world.registry
    world.desire(registry.tampered)
    world.ticks(1)
    assert world.phase() == "failed"
    reason = world.cluster.state()["rejected"][registry.tampered]
    assert f"{MODEL} v{registry.tampered} refused: model.skops differs from its signed digest" in reason
    scale_ups = [r for r in world.cluster.requests if r[1].endswith(f"/{CANARY}/scale") and r[2]["spec"]["replicas"]]
    assert scale_ups == []
    world.assert_serving(registry.champion)


def test_a_canary_with_its_own_loader_is_refused_before_any_traffic_and_never_imported(world: World):
    registry = world.registry
    canary = registry.own_loader
    world.desire(canary.version)
    world.ticks(1)
    assert world.phase() == "failed"
    reason = world.cluster.state()["rejected"][canary.version]
    assert f"{MODEL} v{canary.version} refused: its loader module {canary.module} is not plinth's" in reason
    scale_ups = [r for r in world.cluster.requests if r[1].endswith(f"/{CANARY}/scale") and r[2]["spec"]["replicas"]]
    assert scale_ups == []
    assert not canary.marker.exists()
    world.assert_serving(registry.champion)


def test_a_rolled_back_versions_files_registered_again_stay_rolled_back_until_a_retry(world: World):
    registry = world.registry
    world.desire(registry.garbage)
    world.until("failed")
    copy = registry.copy_of(registry.garbage)
    world.cluster.set_desired(copy)
    for _ in range(2):
        world.restart()
        world.ticks(2)
    assert world.started() == 1
    reason = world.cluster.state()["rejected"][copy]
    assert reason.startswith(f"its files are those of v{registry.garbage} (manifest sha256:")
    assert "success-rate failed" in reason
    blocked = f"v{copy} was rolled back in {ENV} (its files are those of v{registry.garbage}"
    assert any(blocked in line and f"make retry ENV={ENV} VERSION={copy}" in line for line in world.lines)
    world.assert_serving(registry.champion)
    assert status_row(world).phase == "failed"
    # `make retry ENV=staging` without VERSION retries the held-back copy (what it annotates, as a person).
    record = world.cluster.configmaps[STATE]
    assert retry_target(State.from_configmap(record["data"], {}, None), None) == copy
    world.cluster.annotate_state(RETRY_ANNOTATION, copy)
    world.ticks(1)
    assert world.started() == 2
    assert world.phase() == "progressing"
    assert world.cluster.state()["canary_version"] == copy
    assert copy not in world.cluster.state()["rejected"]


def status_row(world: World) -> Row:
    where = Registry(world.registry.uri, "test store")
    status = Status(Path.cwd(), where, MODEL, api_for=lambda _environment: world.cluster.api())
    row = Row(ENV)
    status.from_cluster(row, Coordinates(NS, STATE, ROUTE, CANARY))
    return row


def test_status_and_retry_show_and_drive_each_step(world: World):
    registry = world.registry
    world.ticks(1)
    assert (status_row(world).serving, status_row(world).phase) == (f"v{registry.champion}", "initialized")
    world.cluster.set_desired(registry.garbage)
    world.ticks(1)
    row = status_row(world)
    assert row.canary == f"v{registry.garbage} @ 25%"
    assert row.phase == "progressing"
    world.until("failed")
    row = status_row(world)
    assert (row.serving, row.canary, row.phase) == (f"v{registry.champion}", "-", "failed")
    assert row.outcome.startswith(f"v{registry.garbage} rolled_back")
    person = world.cluster.server.api("kubernetes-admin")  # `make retry` is a person's; the controller only clears it
    with pytest.raises(RetryRefused, match=f"v{registry.good} is not rolled back in this environment"):
        request_retry(person, NS, STATE, registry.good)
    assert request_retry(person, NS, STATE, None) == registry.garbage
    assert f"retry of v{registry.garbage} requested" in status_row(world).notes
    world.ticks(1)
    assert world.started() == 2
    assert status_row(world).phase == "progressing"


def test_status_without_a_cluster_reads_git_and_the_registry(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    world.ticks(1)
    assert status_main(["--tracking-uri", world.registry.uri, "--model-name", MODEL]) == 0
    screen = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in screen.splitlines() if line.startswith(("staging", "prod"))}
    assert lines["staging"][1] == "v2"  # manifests/overlays/staging/desired.yaml
    assert lines["prod"][1] == "v1"
    assert lines["staging"][2] == f"v{world.registry.champion}"  # serving-staging, set at initialization
    assert "staging: cluster unreachable" in screen


def test_a_reapply_that_resets_the_route_mid_analysis_is_repaired_and_not_judged(world: World):
    registry = world.registry
    world.desire(registry.good)
    world.ticks(2)
    assert world.cluster.weights()[CANARY] == 50
    judged = world.judged()
    world.cluster.set_weights(stable=100, canary=0)  # `kubectl apply -k` of the overlay's route
    world.ticks(1)
    assert world.cluster.weights()[CANARY] == 50
    assert world.judged() == judged
    world.until("succeeded")
    world.assert_serving(registry.good)


def rendered(overlays: Path, environment: str) -> list[dict]:
    kubectl = find_tool("kubectl")
    return [doc for doc in yaml.safe_load_all(overlay.render(kubectl, overlays / environment)) if doc]


def commit_desired(overlays: Path, environment: str, version: str) -> None:
    """What `make promote` (or a person) commits: the overlay's desired version, nothing else."""
    path = overlays / environment / overlay.DESIRED_FILE
    overlay.write_atomically(path, overlay.rewrite_desired(path.read_text(), version))


def test_the_story_through_the_staging_overlay_as_rendered_and_applied(registry: Versions, tmp_path: Path):
    """The chart as rendered by the staging overlay, the controller as its Deployment runs it, Git as commits."""
    manifests = tmp_path / "manifests"
    shutil.copytree(Path(__file__).resolve().parents[2] / "manifests", manifests)
    overlays = manifests / "overlays"
    commit_desired(overlays, "staging", registry.champion)
    objects = rendered(overlays, "staging")
    cluster = FakeCluster(manifests=objects)
    controller = next(o for o in objects if o["kind"] == "Deployment" and "--state-configmap" in str(o))
    command = controller["spec"]["template"]["spec"]["containers"][0]["command"]
    args = build_parser().parse_args([a.replace("$(PLINTH_ENVIRONMENT)", "staging") for a in command[3:]])
    edge = ClusterEdge(
        cluster.api(),
        args.namespace,
        args.httproute,
        args.stable_service,
        args.canary_service,
        args.canary_deployment,
        args.stable_deployment,
        args.state_configmap,
    )
    records = MlflowRegistry(registry.client, registry.uri, MODEL, args.environment)
    lines: list[str] = []
    source = ScriptedSource(cluster, bad={registry.garbage})

    def controller_pod() -> Reconciler:
        return Reconciler(SPEC, edge, source, records, MODEL, args.environment, on_line=lines.append)

    def ticks(count: int) -> None:
        reconciler = controller_pod()
        for _ in range(count):
            reconciler.tick()

    try:
        ticks(1)
        assert cluster.serving[cluster.stable] == registry.champion  # through the record's configMapKeyRef
        commit_desired(overlays, "staging", registry.garbage)
        cluster.apply(rendered(overlays, "staging"))
        ticks(SPEC.checks[0].failure_limit + 1)
        assert cluster.state()["phase"] == "failed"
        for _ in range(3):  # the controller pod deleted three times, and the same Git state applied again
            cluster.apply(rendered(overlays, "staging"))
            ticks(2)
        assert cluster.reasons().count("RolloutStarted") == 1
        assert cluster.serving[cluster.stable] == registry.champion
        commit_desired(overlays, "staging", registry.good)
        cluster.apply(rendered(overlays, "staging"))
        ticks(len(SPEC.steps) + 1)
        assert cluster.state()["phase"] == "succeeded"
        assert cluster.serving[cluster.stable] == registry.good
        assert cluster.weights() == {cluster.stable: 100, cluster.canary: 0}
        cluster.apply(rendered(overlays, "staging"))  # a GitOps agent re-applies: nothing moves
        cluster.restart_pods(cluster.stable)
        ticks(2)
        assert cluster.serving[cluster.stable] == registry.good
        assert cluster.reasons().count("RolloutStarted") == 2
    finally:
        registry.forget_rollouts()


SHADOW_SPEC = replace(SPEC, shadow=ShadowSpec(enabled=True, duration=0.001, min_requests=10))


def route_patches(world: World) -> list[dict]:
    return [
        body["spec"]["rules"]
        for method, path, body, _ in world.cluster.requests
        if path == ROUTE_PATH and method == "PATCH"
    ]


def test_the_shadow_phase_mirrors_survives_a_restart_then_steps_and_promotes(registry: Versions):
    world = World(registry, spec=SHADOW_SPEC)
    try:
        world.desire(registry.good)
        world.ticks(1)
        record = world.cluster.state()
        assert (record["checked"], record["shadow"], record["weight"]) == (True, True, 0)
        assert world.cluster.weights()[CANARY] == 0
        assert world.cluster.mirrored() == [CANARY]
        assert world.cluster.serving[CANARY] == registry.good
        world.restart()  # a new controller pod in the shadow phase: it resumes there, the mirror kept
        world.ticks(1)
        assert any(f"resuming the rollout of v{registry.good} at shadow" in line for line in world.lines)
        assert world.cluster.state()["shadow"] is True
        assert world.cluster.mirrored() == [CANARY]
        world.cluster.remove_filters()  # Git's route re-applied: the mirror is put back, that interval not judged
        world.ticks(1)
        assert world.cluster.mirrored() == [CANARY]
        assert any("not 0% mirrored (a re-apply?)" in line for line in world.lines)
        world.ticks(1)  # one passing interval on mirrored traffic: the first weighted step, the mirror removed
        assert world.cluster.state()["shadow"] is False
        assert world.cluster.weights()[CANARY] == SPEC.steps[0]
        assert world.cluster.mirrored() == []
        assert "ShadowPassed" in world.cluster.reasons()
        world.until("succeeded")
        world.assert_serving(registry.good)
        assert world.cluster.mirrored() == []
    finally:
        registry.forget_rollouts()


def test_a_bad_canary_is_rolled_back_in_shadow_without_weight(registry: Versions):
    world = World(registry, spec=SHADOW_SPEC)
    try:
        world.desire(registry.garbage)
        world.until("failed")
        assert "success-rate failed 2 time(s)" in world.cluster.state()["message"]
        assert any("at shadow: rollback" in line for line in world.lines)
        world.assert_serving(registry.champion)
        assert world.cluster.mirrored() == []
        # The route never gave the canary a live request: mirrored, then not even that.
        weights = [
            ref["weight"] for rules in route_patches(world) for ref in rules[0]["backendRefs"] if ref["name"] == CANARY
        ]
        assert weights
        assert set(weights) == {0}
    finally:
        registry.forget_rollouts()


def test_a_canary_refused_by_the_pre_traffic_check_never_gets_a_request(registry: Versions):
    asked: list[str] = []

    def pre_traffic(version: str) -> str | None:
        asked.append(version)
        return "canary answered its reference rows with HTTP 500: boom"

    world = World(registry, spec=SHADOW_SPEC, pre_traffic=pre_traffic)
    try:
        world.desire(registry.good)
        world.ticks(1)
        record = world.cluster.state()
        assert record["phase"] == "failed"
        assert record["message"] == "refused before any traffic: canary answered its reference rows with HTTP 500: boom"
        assert record["checked"] is False
        assert asked == [registry.good]
        assert world.cluster.mirrored() == []
        assert all(
            ref["weight"] == 0
            for rules in route_patches(world)
            for ref in rules[0]["backendRefs"]
            if ref["name"] == CANARY
        )
        world.assert_serving(registry.champion)
    finally:
        registry.forget_rollouts()
