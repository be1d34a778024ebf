"""The cluster edge against the real kubernetes client, over the stateful fake API server underneath it."""

import pytest

from serving.rollout.core.reconcile import ClusterRefusal, Desired, Readiness, StateConflict
from serving.rollout.core.state import RETRY_ANNOTATION, RolloutStatus, State
from serving.rollout.edges.kube import SERVED_ANNOTATION, ClusterEdge, RouteError, remirror, reweigh
from serving.rollout.tests.fake_cluster import CANARY, NS, ROUTE, ROUTE_PATH, STABLE, STATE, FakeCluster


def edge_for(cluster: FakeCluster) -> ClusterEdge:
    return ClusterEdge(cluster.api(), NS, ROUTE, STABLE, CANARY, CANARY, STABLE, STATE)


def test_set_weight_merge_patches_the_route_with_its_resource_version_and_emits_an_event():
    cluster = FakeCluster()
    version = cluster.route["metadata"]["resourceVersion"]
    edge_for(cluster).set_weight(25)
    assert cluster.weights() == {STABLE: 75, CANARY: 25}
    patch = next(r for r in cluster.requests if r[0] == "PATCH")
    assert patch[3] == "application/merge-patch+json"
    assert patch[2]["metadata"]["resourceVersion"] == version
    event = cluster.events[-1]
    assert event["involvedObject"]["kind"] == "HTTPRoute"
    assert event["reason"] == "CanaryWeight"
    assert "at 25%" in event["message"]


def test_a_conflicting_edit_is_retried_on_the_fresh_route():
    cluster = FakeCluster()
    cluster.route_conflicts = 1
    edge_for(cluster).set_weight(50)
    assert cluster.weights() == {STABLE: 50, CANARY: 50}
    patches = [r[2]["metadata"]["resourceVersion"] for r in cluster.requests if r[0] == "PATCH" and r[1] == ROUTE_PATH]
    assert len(patches) == 2
    assert patches[0] != patches[1]


def test_repeated_conflicts_surface_as_a_refusal():
    cluster = FakeCluster()
    cluster.route_conflicts = 2
    with pytest.raises(ClusterRefusal) as error:
        edge_for(cluster).set_weight(50)
    assert error.value.status == 409
    assert error.value.call == f"patch HTTPRoute {ROUTE}"
    assert not error.value.permanent  # a conflict is redone on the next tick, not counted towards a rollback
    assert cluster.weights()[CANARY] == 0


def test_a_route_without_the_canary_backend_is_refused():
    with pytest.raises(RouteError, match=CANARY):
        reweigh([{"backendRefs": [{"name": STABLE}]}], STABLE, CANARY, 10)


def test_desired_is_read_from_the_canary_deployment():
    assert edge_for(FakeCluster(desired="7")).read_desired() == Desired(version="7", alias="challenger")
    assert edge_for(FakeCluster(desired=None)).read_desired() == Desired(version=None, alias="challenger")


def test_the_record_is_created_then_updated_only_against_the_version_read():
    cluster = FakeCluster()
    edge = edge_for(cluster)
    assert edge.read_state() is None
    written = edge.write_state(State(stable_version="1", status=RolloutStatus(phase="initialized")))
    assert cluster.state()["stableVersion"] == "1"
    read = edge.read_state()
    assert read is not None
    assert read.resource_version == written.resource_version
    cluster.annotate_state(RETRY_ANNOTATION, "2")  # somebody else writes in between
    with pytest.raises(StateConflict):
        edge.write_state(read)
    fresh = edge.read_state()
    assert fresh is not None
    assert fresh.retry == "2"
    cleared = edge.write_state(fresh, clear_retry=True)
    assert cleared.retry is None
    assert RETRY_ANNOTATION not in cluster.configmaps[STATE]["metadata"].get("annotations", {})
    with pytest.raises(StateConflict):
        edge.write_state(State(stable_version="1"))  # a second creator


def test_serving_on_the_stable_reloads_its_pods_from_the_record_once_per_version():
    cluster = FakeCluster()
    edge = edge_for(cluster)
    edge.write_state(State(stable_version="3"))
    edge.serve_on_stable("3")
    edge.serve_on_stable("3")
    assert cluster.serving[STABLE] == "3"
    assert cluster.rollouts[STABLE] == 1
    assert edge.served_annotation() == "3"
    template = cluster.deployments[STABLE]["spec"]["template"]["metadata"]["annotations"]
    assert template == {SERVED_ANNOTATION: "3"}


def test_the_canary_starts_and_stops_by_scale():
    cluster = FakeCluster(desired="2")
    edge = edge_for(cluster)
    edge.stop_canary()
    assert cluster.serving[CANARY] is None
    assert edge.canary_replicas() == 0
    edge.start_canary()
    assert cluster.serving[CANARY] == "2"
    assert edge.canary_replicas() == 1
    assert edge.route_weight() == 0


def test_readiness_is_read_from_the_deployment_status_without_waiting():
    cluster = FakeCluster()
    edge = edge_for(cluster)
    assert edge.canary_ready() == Readiness(ready=True)
    status = cluster.deployments[CANARY]["status"]
    status["availableReplicas"] = 0  # the pods are not up yet
    assert edge.canary_ready() == Readiness(ready=False)
    status["conditions"] = [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "timed out"}
    ]
    readiness = edge.canary_ready()
    assert not readiness.ready
    assert readiness.stuck == f"Deployment {CANARY}: ProgressDeadlineExceeded: timed out"
    assert edge.stable_ready() == Readiness(ready=True)


def test_the_mirror_filter_is_added_and_removed_alone_and_the_canary_url_follows_the_route():
    cluster = FakeCluster()
    header = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-a", "value": "1"}]}}
    cluster.route["spec"]["rules"][0]["filters"] = [header]
    edge = edge_for(cluster)
    assert not edge.route_mirror()
    edge.set_mirror(True)
    assert edge.route_mirror()
    assert cluster.mirrored() == [CANARY]
    assert cluster.route["spec"]["rules"][0]["filters"] == [
        header,
        # As the API server stores the controller's filter: the Gateway API CRD defaults group and kind.
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"group": "", "kind": "Service", "name": CANARY, "port": 80}},
        },
    ]
    edge.set_mirror(True)  # idempotent: still one mirror
    assert cluster.mirrored() == [CANARY]
    edge.set_mirror(False)
    assert cluster.route["spec"]["rules"][0]["filters"] == [header]
    assert "CanaryMirror" in cluster.reasons()
    assert edge.canary_url() == f"http://{CANARY}.{NS}.svc:80"


def test_a_route_without_the_canary_cannot_be_mirrored():
    with pytest.raises(RouteError, match="no backendRef for Service clf-canary"):
        remirror([{"backendRefs": [{"name": STABLE, "port": 80}]}], CANARY, True)
