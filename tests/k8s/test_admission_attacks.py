"""A stolen rollout-controller identity against the chart's admission policy, on the objects as stored.

Each attack is a request the controller's ServiceAccount could make under its Role, sent through the real
kubernetes client to the API server stand-in (`FakeCluster.from_chart()`: the chart's objects stored with CRD and
Go defaults applied, the chart's ValidatingAdmissionPolicy in front of every write). Each must come back 403 with
the policy's words and leave the stored object as it was; the controller's own writes of the same kinds pass.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from controller_scenario import CONTROLLER, edge_for
from k8s_tooling import NAMESPACE
from kubernetes.client import AppsV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from serving.rollout.core.reconcile import ClusterRefusal
from serving.rollout.core.state import RETRY_ANNOTATION, RolloutStatus, State
from serving.rollout.edges.kube import ClusterEdge
from serving.rollout.tests.fake_cluster import FakeCluster, chart_objects
from tests.apiserver.resources import CONFIGMAP

POLICY = f"{NAMESPACE}-{CONTROLLER}"
DENIED = f"ValidatingAdmissionPolicy '{POLICY}' with binding '{POLICY}' denied request: "
ROUTE, STABLE, CANARY = "release-plinth-serving", "release-plinth-serving-stable", "release-plinth-serving-canary"
STATE = "release-plinth-serving-rollout-state"
ROUTE_PATH = ("gateway.networking.k8s.io", "v1", NAMESPACE, "httproutes", ROUTE)
METADATA = "may not change the metadata"
MISSING_OWNER = {
    "apiVersion": "apps/v1",
    "kind": "ReplicaSet",
    "name": "gone",
    "uid": "0d15ea5e-0000-4000-8000-000000000000",
}


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster.from_chart()


@pytest.fixture
def edge(cluster: FakeCluster) -> ClusterEdge:
    return edge_for(cluster, list(chart_objects()))


def refused(call: Callable[[], Any], words: str, code: int = 403) -> str:
    """Make a call as the controller: it must be refused with `code` and a message holding `words`."""
    try:
        call()
    except ApiException as error:
        found, message = error.status or 0, str(error.body)
    except ClusterRefusal as error:
        found, message = error.status, error.message
    else:
        raise AssertionError("the API server accepted the write")
    assert found == code, message
    assert words in message, message
    return message


def status(**fields: Any) -> RolloutStatus:
    return RolloutStatus(**fields)


def initialized(edge: ClusterEdge, version: str = "1") -> State:
    """The record as the loop writes it for an environment's first version (a create, through the policy)."""
    return edge.write_state(State(stable_version=version, status=status(phase="initialized", canary_version=version)))


def record(cluster: FakeCluster) -> dict[str, str]:
    return dict(cluster.server.store.get(CONFIGMAP, NAMESPACE, STATE)["data"])


STABLE_PATCHES: dict[str, tuple[dict[str, Any], str]] = {
    "ownerReferences to a missing owner (garbage-collects the stable)": (
        {"metadata": {"ownerReferences": [MISSING_OWNER]}},
        METADATA,
    ),
    "a finalizer (the stable can never be deleted)": ({"metadata": {"finalizers": ["example.com/hold"]}}, METADATA),
    "another annotation": ({"metadata": {"annotations": {"argocd.argoproj.io/sync-options": "Prune=false"}}}, METADATA),
    "replicas 0 (the stable serves nothing)": (
        {"spec": {"replicas": 0}},
        f"Deployment {STABLE} keeps at least 1 replica",
    ),
    "a served-version stamp that is not a version": (
        {"spec": {"template": {"metadata": {"annotations": {"plinth.dev/served-version": "7; rm"}}}}},
        "to a version number",
    ),
}


@pytest.mark.parametrize("case", sorted(STABLE_PATCHES))
def test_the_stable_deployment_keeps_its_metadata_and_replicas(cluster: FakeCluster, case: str) -> None:
    body, words = STABLE_PATCHES[case]
    before = copy.deepcopy(cluster.deployments[STABLE])
    apps = AppsV1Api(cluster.api())
    assert DENIED in refused(lambda: apps.patch_namespaced_deployment(STABLE, NAMESPACE, body), words)
    assert cluster.deployments[STABLE]["metadata"] == before["metadata"]
    assert cluster.deployments[STABLE]["spec"] == before["spec"]


def test_the_canary_scales_only_between_0_and_its_pods_and_the_stable_not_at_all(cluster: FakeCluster) -> None:
    scale = AppsV1Api(cluster.api()).patch_namespaced_deployment_scale
    refused(lambda: scale(CANARY, NAMESPACE, {"spec": {"replicas": 5}}), f"may scale Deployment {CANARY} to 0 to 1")
    refused(lambda: scale(STABLE, NAMESPACE, {"spec": {"replicas": 0}}), f"the scale of Deployment {CANARY}")
    assert cluster.deployments[STABLE]["spec"]["replicas"] >= 1
    scale(CANARY, NAMESPACE, {"spec": {"replicas": 1}})  # what start_canary does
    assert cluster.deployments[CANARY]["spec"]["replicas"] == 1


def weigh(stable: int, canary: int) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    def change(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rules = copy.deepcopy(rules)
        for ref in rules[0]["backendRefs"]:
            ref["weight"] = stable if ref["name"] == STABLE else canary
        return rules

    return change


WEIGHTS = f"on HTTPRoute {ROUTE} the weights of backends {STABLE} and {CANARY} are each 0 to 100 and sum to 100"


@pytest.mark.parametrize(("stable", "canary"), [(90, 20), (101, 0), (0, 0), (50, 49)])
def test_route_weights_stay_0_to_100_and_sum_to_100(
    cluster: FakeCluster, edge: ClusterEdge, stable: int, canary: int
) -> None:
    before = copy.deepcopy(cluster.route)
    body = {"spec": {"rules": weigh(stable, canary)(before["spec"]["rules"])}}  # the merge patch set_weight sends
    refused(lambda: edge.custom.patch_namespaced_custom_object(*ROUTE_PATH, body), WEIGHTS)
    assert cluster.route["spec"] == before["spec"]
    edge.set_weight(25)  # the controller's own split passes
    assert cluster.weights() == {STABLE: 75, CANARY: 25}


def test_a_negative_weight_is_refused_by_the_schema_and_by_the_policy_on_the_defaulted_route(
    cluster: FakeCluster, edge: ClusterEdge
) -> None:
    """101/-1: the CRD schema answers 422 first, as the API server does; the policy alone would deny it too."""
    refused(lambda: edge.patch_rules(weigh(101, -1)), "is invalid", 422)
    old = copy.deepcopy(cluster.route)
    assert old["spec"]["rules"][0]["backendRefs"][0]["kind"] == "Service", "the stored route is the defaulted one"
    new = copy.deepcopy(old)
    new["spec"]["rules"] = weigh(101, -1)(new["spec"]["rules"])
    [policy] = cluster.server.policies
    assert policy.review(new, old, user=cluster.server.user, namespace=NAMESPACE).denied == [WEIGHTS]


def test_stable_version_is_a_version_number(cluster: FakeCluster, edge: ClusterEdge) -> None:
    state = initialized(edge)
    injected = State(stable_version="7; rm", status=state.status, resource_version=state.resource_version)
    refused(lambda: edge.write_state(injected), f"ConfigMap {STATE} holds only stableVersion (a version number)")
    assert record(cluster)["stableVersion"] == "1"


STEPS = "stableVersion may change only to"


def test_stable_version_moves_only_to_the_version_the_record_promotes(cluster: FakeCluster, edge: ClusterEdge) -> None:
    state = initialized(edge)
    progressing = status(phase="progressing", canary_version="2", stable_at_start="1")
    state = edge.write_state(State(stable_version="1", status=progressing, resource_version=state.resource_version))
    claims = (("2", progressing), ("9", progressing), ("9", status(phase="promoting", canary_version="9")))
    for version, claimed in claims:
        attack = State(stable_version=version, status=claimed, resource_version=state.resource_version)
        refused(lambda attack=attack: edge.write_state(attack), STEPS)  # type: ignore[misc]
        assert record(cluster)["stableVersion"] == "1"
    promoting = status(phase="promoting", canary_version="2", stable_at_start="1")
    state = edge.write_state(State(stable_version="1", status=promoting, resource_version=state.resource_version))
    state = edge.write_state(State(stable_version="2", status=promoting, resource_version=state.resource_version))
    assert record(cluster)["stableVersion"] == "2"
    done = status(phase="succeeded", canary_version="2", stable_at_start="1")
    state = edge.write_state(State(stable_version="2", status=done, resource_version=state.resource_version))
    back = State(stable_version="1", status=done, resource_version=state.resource_version)
    refused(lambda: edge.write_state(back), STEPS)  # a finished rollout is no way back


def test_a_rolled_back_promotion_returns_only_to_where_it_started(cluster: FakeCluster, edge: ClusterEdge) -> None:
    state = initialized(edge, "3")
    promoting = status(phase="promoting", canary_version="4", stable_at_start="3")
    state = edge.write_state(State(stable_version="3", status=promoting, resource_version=state.resource_version))
    state = edge.write_state(State(stable_version="4", status=promoting, resource_version=state.resource_version))
    failed = status(phase="failed", canary_version="4", stable_at_start="3")
    elsewhere = State(stable_version="2", status=failed, resource_version=state.resource_version)
    refused(lambda: edge.write_state(elsewhere), STEPS)
    edge.write_state(State(stable_version="3", status=failed, resource_version=state.resource_version))
    assert record(cluster)["stableVersion"] == "3"


LABEL = {"app.kubernetes.io/managed-by": "plinth-rollout"}
CREATES: dict[str, tuple[dict[str, Any], dict[str, str], str]] = {
    "another name": ({"name": "payload", "labels": LABEL}, {"status": "{}"}, "may change only"),
    "an extra label": ({"name": STATE, "labels": {**LABEL, "x": "y"}}, {"status": "{}"}, "nothing else in its"),
    "an owner": (
        {"name": STATE, "labels": LABEL, "ownerReferences": [MISSING_OWNER]},
        {"status": "{}"},
        "nothing else",
    ),
    "another key": ({"name": STATE, "labels": LABEL}, {"status": "{}", "script": "x"}, "holds only stableVersion"),
    "a version nobody initialized": ({"name": STATE, "labels": LABEL}, {"status": "{}", "stableVersion": "9"}, STEPS),
}


@pytest.mark.parametrize("case", sorted(CREATES))
def test_the_record_is_created_only_under_its_name_and_as_the_controller_writes_it(
    cluster: FakeCluster, case: str
) -> None:
    metadata, data, words = CREATES[case]
    chart = set(cluster.configmaps)
    core = CoreV1Api(cluster.api())
    refused(lambda: core.create_namespaced_config_map(NAMESPACE, {"metadata": metadata, "data": data}), words)
    assert set(cluster.configmaps) == chart, "nothing created"


def test_no_other_configmap_changes_and_the_retry_annotation_is_only_cleared(
    cluster: FakeCluster, edge: ClusterEdge
) -> None:
    core = CoreV1Api(cluster.api())
    spec = copy.deepcopy(cluster.configmaps[CONTROLLER])
    looser = {"data": {"analysis.yaml": "steps: [100]"}}
    refused(lambda: core.patch_namespaced_config_map(CONTROLLER, NAMESPACE, looser), f"ConfigMap {STATE}")
    assert cluster.configmaps[CONTROLLER] == spec
    initialized(edge)
    retry = {"metadata": {"annotations": {RETRY_ANNOTATION: "6"}}}
    refused(lambda: core.patch_namespaced_config_map(STATE, NAMESPACE, retry), METADATA)
    cluster.annotate_state(RETRY_ANNOTATION, "6")  # a person asks for a retry; the controller clears it
    state = edge.read_state()
    assert state is not None
    assert state.retry == "6"
    edge.write_state(state, clear_retry=True)
    assert RETRY_ANNOTATION not in (cluster.configmaps[STATE]["metadata"].get("annotations") or {})


def test_events_are_about_the_route_and_from_the_controller(cluster: FakeCluster, edge: ClusterEdge) -> None:
    edge.event("CanaryWeight", "canary at 10%")
    assert cluster.reasons() == ["CanaryWeight"]
    forged = {
        "metadata": {"generateName": "x."},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "payments-0", "namespace": "payments"},
        "reason": "Killing",
        "message": "Stopping container",
        "type": "Normal",
        "source": {"component": "kubelet"},
    }
    core = CoreV1Api(cluster.api())
    refused(lambda: core.create_namespaced_event(NAMESPACE, forged), f"Events are about HTTPRoute {ROUTE}")
    assert cluster.reasons() == ["CanaryWeight"]


def test_the_record_format_is_what_the_policy_reads() -> None:
    """The policy matches `status` by its lines (CEL reads no JSON): state.py must keep writing them so."""
    text = status(phase="promoting", canary_version="12", stable_at_start="11").to_json()
    for line in ('\n "phase": "promoting",\n', '\n "canary_version": "12",\n', '\n "stable_at_start": "11",\n'):
        assert line in text
