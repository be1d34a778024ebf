"""One rollout driven through ClusterEdge against the fake API server, loaded with the chart's own objects.

Shared by test_rbac.py (every request is granted by the Role) and test_admission_policy.py (every write passes
the ValidatingAdmissionPolicy): what the reconcile loop does over a rollout that promotes.
"""

from __future__ import annotations

from typing import Any

from k8s_tooling import named

from serving.rollout.core.state import RolloutStatus, State
from serving.rollout.edges.kube import ClusterEdge
from serving.rollout.tests.fake_cluster import FakeCluster

CONTROLLER = "release-plinth-serving-rollout"


def controller_flags(objects: list[dict[str, Any]]) -> dict[str, str]:
    command = named(objects, "Deployment", CONTROLLER)["spec"]["template"]["spec"]["containers"][0]["command"]
    return dict(zip(command[3::2], command[4::2], strict=True))


def edge_for(cluster: FakeCluster, objects: list[dict[str, Any]]) -> ClusterEdge:
    """A ClusterEdge over `cluster`, named by the arguments the chart gives the controller."""
    flags = controller_flags(objects)
    return ClusterEdge(
        cluster.api(),
        flags["--namespace"],
        flags["--httproute"],
        flags["--stable-service"],
        flags["--canary-service"],
        flags["--canary-deployment"],
        flags["--stable-deployment"],
        flags["--state-configmap"],
    )


def drive_a_rollout(edge: ClusterEdge) -> None:
    """What the reconcile loop does over one rollout that promotes: every kind of call ClusterEdge makes."""
    assert edge.read_state() is None
    assert edge.read_desired().alias == "challenger"
    edge.write_state(State(stable_version="1", status=RolloutStatus(phase="initialized", canary_version="1")))
    assert edge.served_annotation() is None
    edge.stop_canary()
    edge.start_canary()
    assert edge.canary_ready().ready
    edge.set_mirror(True)  # the shadow phase: the route mirrors to the canary at weight 0
    assert edge.route_mirror()
    edge.set_mirror(False)
    assert not edge.route_mirror()
    for weight in (10, 50, 100):
        edge.set_weight(weight)
        assert edge.route_weight() == weight
    state = edge.read_state()
    assert state is not None
    # As the loop records a promotion: first the phase, then the stable version (the admission policy holds it).
    promoting = RolloutStatus(phase="promoting", canary_version="2", stable_at_start="1")
    state = edge.write_state(State(stable_version="1", status=promoting, resource_version=state.resource_version))
    edge.write_state(State(stable_version="2", status=promoting, resource_version=state.resource_version))
    edge.serve_on_stable("2")
    assert edge.stable_ready().ready
    edge.set_weight(0)
    edge.stop_canary()
    state = edge.read_state()
    assert state is not None
    edge.write_state(state, clear_retry=True)
    edge.event("RolloutPromoted", "v2 promoted")
