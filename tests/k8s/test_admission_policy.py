"""The rollout controller's ValidatingAdmissionPolicy, its CEL evaluated with cel-python on the chart's objects.

The evaluator is the API server stand-in's (tests/apiserver/admission.py): the binding's namespace selector and
the policy's resource rules decide whether a request is matched, the matchConditions whether it is the
controller's, and every validation must then be true; an evaluation error denies, as `failurePolicy: Fail` does.
Here each edit is reviewed directly; the last tests drive a whole rollout through the stand-in, where the policy
runs in front of every write on the objects as the API server stores them (CRD defaults applied).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from controller_scenario import CONTROLLER, drive_a_rollout, edge_for
from k8s_tooling import NAMESPACE, named, render, validate_object

from serving.rollout.core.reconcile import ClusterRefusal
from serving.rollout.edges.kube import SERVED_ANNOTATION, remirror, reweigh
from serving.rollout.tests.fake_cluster import FakeCluster, before_the_mirror_fix
from tests.apiserver import admission
from tests.apiserver.admission import Verdict
from tests.apiserver.resources import DEPLOYMENT, HTTPROUTE

POLICY = f"{NAMESPACE}-{CONTROLLER}"
CONTROLLER_USER = f"system:serviceaccount:{NAMESPACE}:{CONTROLLER}"
ROUTE, STABLE, CANARY = "release-plinth-serving", "release-plinth-serving-stable", "release-plinth-serving-canary"
STATE = "release-plinth-serving-rollout-state"


class AdmissionPolicy(admission.AdmissionPolicy):
    """The stand-in's policy, reviewing as the chart's controller in the chart's namespace unless told otherwise."""

    def review(  # type: ignore[override]
        self,
        new: dict[str, Any] | None,
        old: dict[str, Any] | None,
        *,
        user: str = CONTROLLER_USER,
        operation: str = "UPDATE",
        namespace: str = NAMESPACE,
    ) -> Verdict:
        return super().review(new, old, user=user, operation=operation, namespace=namespace)


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render("default")


@pytest.fixture(scope="module")
def policy(objects: list[dict[str, Any]]) -> AdmissionPolicy:
    return AdmissionPolicy(
        named(objects, "ValidatingAdmissionPolicy", POLICY), named(objects, "ValidatingAdmissionPolicyBinding", POLICY)
    )


def live(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The object as the API server holds it: with a resourceVersion, and a canary scaled to 1."""
    obj = copy.deepcopy(named(objects, kind, name))
    obj["metadata"]["resourceVersion"] = "100"
    if kind == "Deployment":
        obj["spec"].setdefault("replicas", 1)
    return obj


def changed(obj: dict[str, Any], edit: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """A copy of `obj` with `edit` applied, and a new resourceVersion, as every write gives."""
    new = copy.deepcopy(obj)
    edit(new)
    new["metadata"]["resourceVersion"] = "101"
    return new


def refs(route: dict[str, Any]) -> list[dict[str, Any]]:
    return route["spec"]["rules"][0]["backendRefs"]


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    return pod(deployment)["containers"][0]


def annotate(deployment: dict[str, Any], key: str, value: str) -> None:
    deployment["spec"]["template"]["metadata"].setdefault("annotations", {})[key] = value


def set_weights(route: dict[str, Any], stable: int, canary: int) -> None:
    """Weigh every rule's backends as the controller does (`reweigh`): the chart's route has several rules."""
    route["spec"]["rules"] = reweigh(route["spec"]["rules"], STABLE, CANARY, canary)
    assert refs(route)[0]["weight"] == stable


def mirror(route: dict[str, Any], **backend: Any) -> None:
    """Add the shadow phase's filter as the controller writes it (`backend` overrides its backendRef)."""
    rule = route["spec"]["rules"][0]
    rule["filters"] = remirror(route["spec"]["rules"], CANARY, True)[0]["filters"]
    rule["filters"][-1]["requestMirror"]["backendRef"].update(backend)


def add_filter(route: dict[str, Any], item: dict[str, Any]) -> None:
    route["spec"]["rules"][0].setdefault("filters", []).append(item)


HEADER = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-a", "value": "1"}]}}

ALLOWED: dict[str, tuple[str, str, Callable[[dict[str, Any]], Any]]] = {
    "route weights": ("HTTPRoute", ROUTE, lambda r: set_weights(r, 75, 25)),
    "route mirror to the canary": ("HTTPRoute", ROUTE, mirror),
    "route mirror with the CRD's defaults": ("HTTPRoute", ROUTE, lambda r: mirror(r, group="", kind="Service")),
    "route weights and managed fields": (
        "HTTPRoute",
        ROUTE,
        lambda r: (set_weights(r, 0, 100), r["metadata"].update(generation=7, managedFields=[{"manager": "x"}])),
    ),
    "stable served-version stamp": ("Deployment", STABLE, lambda d: annotate(d, SERVED_ANNOTATION, "3")),
}

DENIED: dict[str, tuple[str, str, Callable[[dict[str, Any]], Any]]] = {
    "backend name": ("HTTPRoute", ROUTE, lambda r: refs(r)[1].update(name="attacker")),
    # The chart's route has a rule per door; one door's split apart from the others' is no weight the controller sets.
    "weights of one rule only": (
        "HTTPRoute",
        ROUTE,
        lambda r: (refs(r)[0].update(weight=75), refs(r)[1].update(weight=25)),
    ),
    "backend port": ("HTTPRoute", ROUTE, lambda r: refs(r)[0].update(port=8080)),
    "backend namespace": ("HTTPRoute", ROUTE, lambda r: refs(r)[1].update(namespace="elsewhere")),
    "backend added": ("HTTPRoute", ROUTE, lambda r: refs(r).append({"name": "attacker", "port": 80, "weight": 1})),
    "backend removed": ("HTTPRoute", ROUTE, lambda r: refs(r).pop()),
    "path opened to /": (
        "HTTPRoute",
        ROUTE,
        lambda r: r["spec"]["rules"][0]["matches"].append({"path": {"type": "PathPrefix", "value": "/"}}),
    ),
    "mirror to the stable": ("HTTPRoute", ROUTE, lambda r: mirror(r, name=STABLE)),
    "mirror to another port": ("HTTPRoute", ROUTE, lambda r: mirror(r, port=9999)),
    "mirror to another namespace": ("HTTPRoute", ROUTE, lambda r: mirror(r, namespace="elsewhere")),
    "mirror to another kind": ("HTTPRoute", ROUTE, lambda r: mirror(r, kind="ServiceImport")),
    "mirror to another group": ("HTTPRoute", ROUTE, lambda r: mirror(r, group="multicluster.x-k8s.io")),
    "mirror of a share": (
        "HTTPRoute",
        ROUTE,
        lambda r: (mirror(r), r["spec"]["rules"][0]["filters"][-1]["requestMirror"].update(percent=50)),
    ),
    "mirror and another filter": ("HTTPRoute", ROUTE, lambda r: (mirror(r), add_filter(r, HEADER))),
    "another filter": ("HTTPRoute", ROUTE, lambda r: add_filter(r, HEADER)),
    "rule added": ("HTTPRoute", ROUTE, lambda r: r["spec"]["rules"].append({"backendRefs": [{"name": "attacker"}]})),
    "hostnames": ("HTTPRoute", ROUTE, lambda r: r["spec"].update(hostnames=["evil.example.com"])),
    "parentRefs": ("HTTPRoute", ROUTE, lambda r: r["spec"]["parentRefs"][0].update(name="other-gateway")),
    "route annotation": (
        "HTTPRoute",
        ROUTE,
        lambda r: r["metadata"]["annotations"].pop("kustomize.toolkit.fluxcd.io/ssa"),
    ),
    "image": ("Deployment", STABLE, lambda d: container(d).update(image="ghcr.io/attacker/miner:1")),
    "serviceAccountName": ("Deployment", STABLE, lambda d: pod(d).update(serviceAccountName="default")),
    "new volume": (
        "Deployment",
        STABLE,
        lambda d: pod(d)["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
    ),
    "env": ("Deployment", STABLE, lambda d: container(d)["env"].append({"name": "PLINTH_MODEL_VERSION", "value": "9"})),
    "another pod annotation": ("Deployment", STABLE, lambda d: annotate(d, "sidecar.istio.io/inject", "false")),
    "pod label": ("Deployment", STABLE, lambda d: d["spec"]["template"]["metadata"]["labels"].update(extra="x")),
    "strategy": ("Deployment", STABLE, lambda d: d["spec"].update(strategy={"type": "Recreate"})),
    "paused": ("Deployment", STABLE, lambda d: d["spec"].update(paused=True)),
    "deployment label": ("Deployment", STABLE, lambda d: d["metadata"]["labels"].update(extra="x")),
    # The canary moves only by its scale; the stable's replicas are not the controller's to change.
    "canary replicas by its spec": ("Deployment", CANARY, lambda d: d["spec"].update(replicas=0)),
    "stable replicas and stamp": (
        "Deployment",
        STABLE,
        lambda d: (d["spec"].update(replicas=4), annotate(d, SERVED_ANNOTATION, "4")),
    ),
    "stamp that is not a version": ("Deployment", STABLE, lambda d: annotate(d, SERVED_ANNOTATION, "4; x")),
}
# What a denial says: the validation that names what the controller may change, that fences metadata, or that
# holds the weights (every rule's stable and canary summing to 100).
DENIAL_WORDS = ("may change only", "may not change the metadata", "sum to 100")


def test_the_rendered_policy_and_binding_are_valid_objects(objects: list[dict[str, Any]]) -> None:
    policy = named(objects, "ValidatingAdmissionPolicy", POLICY)
    binding = named(objects, "ValidatingAdmissionPolicyBinding", POLICY)
    for obj in (policy, binding):
        assert obj["apiVersion"] == "admissionregistration.k8s.io/v1"
        validate_object(obj)
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert [c["expression"] for c in policy["spec"]["matchConditions"]] == [
        f'request.userInfo.username == "{CONTROLLER_USER}"'
    ]


@pytest.mark.parametrize("case", sorted(ALLOWED))
def test_the_controller_may_change_weights_replicas_and_its_stamp(
    policy: AdmissionPolicy, objects: list[dict[str, Any]], case: str
) -> None:
    kind, name, edit = ALLOWED[case]
    old = live(objects, kind, name)
    verdict = policy.review(changed(old, edit), old)
    assert verdict.matched
    assert verdict.denied == []


@pytest.mark.parametrize("case", sorted(DENIED))
def test_the_controller_may_change_nothing_else(
    policy: AdmissionPolicy, objects: list[dict[str, Any]], case: str
) -> None:
    kind, name, edit = DENIED[case]
    old = live(objects, kind, name)
    verdict = policy.review(changed(old, edit), old)
    assert verdict.matched
    assert len(verdict.denied) == (1 if name != CANARY else 3), verdict.denied  # the canary's: name, spec, replicas
    assert any(words in verdict.denied[0] for words in DENIAL_WORDS), verdict.denied


def stored_and_replaced(kind: str, name: str, edit: Callable[[dict[str, Any]], Any]) -> tuple[FakeCluster, int, str]:
    """PUT `edit` of the object as the stand-in stores it (defaulted), as the controller: the answer's code, words."""
    cluster = FakeCluster.from_chart()
    resource = {"HTTPRoute": HTTPROUTE, "Deployment": DEPLOYMENT}[kind]
    stored = copy.deepcopy(cluster.server.store.get(resource, NAMESPACE, name))
    edit(stored)
    group = f"apis/{resource.group}" if resource.group else "api"
    path = f"/{group}/{resource.version}/namespaces/{NAMESPACE}/{resource.plural}/{name}"
    headers = {"Content-Type": "application/json"}
    status, answer = cluster.server.handle("PUT", path, {}, headers, json.dumps(stored).encode(), CONTROLLER_USER)
    return cluster, status, str(answer.get("message", ""))


@pytest.mark.parametrize("case", sorted(ALLOWED))
def test_the_stand_in_admits_the_controllers_changes_to_the_defaulted_objects(case: str) -> None:
    kind, name, edit = ALLOWED[case]
    cluster, status, message = stored_and_replaced(kind, name, edit)
    assert status == 200, message
    assert cluster.server.reviews, "the policy reviewed the write"


@pytest.mark.parametrize("case", sorted(DENIED))
def test_the_stand_in_denies_every_other_change_to_the_defaulted_objects(case: str) -> None:
    kind, name, edit = DENIED[case]
    resource = {"HTTPRoute": HTTPROUTE, "Deployment": DEPLOYMENT}[kind]
    cluster = FakeCluster.from_chart()
    before = copy.deepcopy(cluster.server.store.get(resource, NAMESPACE, name))
    cluster, status, message = stored_and_replaced(kind, name, edit)
    assert status in (403, 422), message
    # Refused by the policy, or before it by the schema (a rule without a Service port, say): never stored.
    assert any(words in message for words in DENIAL_WORDS) or ("is invalid" in message and status == 422), message
    assert cluster.server.store.get(resource, NAMESPACE, name)["spec"] == before["spec"]


@pytest.mark.parametrize("case", sorted(DENIED))
def test_other_users_are_not_matched(policy: AdmissionPolicy, objects: list[dict[str, Any]], case: str) -> None:
    kind, name, edit = DENIED[case]
    old = live(objects, kind, name)
    for user in (
        "kubernetes-admin",
        "system:serviceaccount:flux-system:kustomize-controller",
        "system:serviceaccount:other:release-plinth-serving-rollout",
    ):
        assert policy.review(changed(old, edit), old, user=user) == Verdict(False, [])
    assert policy.review(changed(old, edit), old, namespace="other") == Verdict(False, [])


def test_the_controller_may_remove_its_mirror_and_nothing_beside_it(
    policy: AdmissionPolicy, objects: list[dict[str, Any]]
) -> None:
    shadowing = changed(live(objects, "HTTPRoute", ROUTE), lambda r: (add_filter(r, HEADER), mirror(r)))
    removed = changed(shadowing, lambda r: r["spec"]["rules"][0].update(filters=[HEADER]))
    assert policy.review(removed, shadowing).denied == []
    both = changed(shadowing, lambda r: r["spec"]["rules"][0].pop("filters"))
    assert len(policy.review(both, shadowing).denied) == 1


def test_the_controller_may_not_create_delete_or_touch_other_objects(
    policy: AdmissionPolicy, objects: list[dict[str, Any]]
) -> None:
    route, stable = live(objects, "HTTPRoute", ROUTE), live(objects, "Deployment", STABLE)
    assert not policy.review(None, route, operation="DELETE").allowed
    assert not policy.review(stable, None, operation="CREATE").allowed
    other = changed(stable, lambda d: d["metadata"].update(name="someone-else"))
    assert policy.review(changed(other, lambda d: d["spec"].update(replicas=9)), other).denied[:1] == [
        f"the rollout controller may change only HTTPRoute {ROUTE}, Deployment {STABLE}, the scale of Deployment "
        f"{CANARY} and ConfigMap {STATE}"
    ]


def test_every_write_of_a_real_rollout_passes_the_policy(objects: list[dict[str, Any]]) -> None:
    """The stand-in runs the chart's policy in front of every write, on the defaulted objects it stores."""
    cluster = FakeCluster(manifests=objects)
    assert [p.name for p in cluster.server.policies] == [POLICY]
    drive_a_rollout(edge_for(cluster, objects))
    reviews = cluster.server.reviews
    reviewed = {(plural, name, sub) for _, plural, name, sub, _, _ in reviews if plural != "events"}
    assert reviewed == {("httproutes", ROUTE, ""), ("deployments", STABLE, ""), ("deployments", CANARY, "scale")} | {
        ("configmaps", STATE, "")
    }, "the canary moves by its scale; the record and the Events are reviewed too"
    assert any(plural == "events" for _, plural, *_ in reviews)
    assert all(verdict.matched and verdict.allowed for *_, verdict in reviews), reviews
    mirrored = cluster.server.requests
    assert any(body.get("spec", {}).get("rules", [{}])[0].get("filters") for _, _, body, _ in mirrored)


def test_the_controller_weighs_and_mirrors_every_rule_of_the_route(objects: list[dict[str, Any]]) -> None:
    """The chart's route has a rule per door (/predict and /explain, the Open Inference Protocol): each moves."""
    cluster = FakeCluster(manifests=objects)
    edge = edge_for(cluster, objects)
    edge.start_canary()
    edge.set_weight(25)
    rules = cluster.route["spec"]["rules"]
    assert len(rules) == 2
    weights = [{ref["name"]: ref["weight"] for ref in rule["backendRefs"]} for rule in rules]
    assert weights == [{STABLE: 75, CANARY: 25}] * 2
    assert all(ref["kind"] == "Service" and ref["group"] == "" for rule in rules for ref in rule["backendRefs"])
    edge.set_mirror(True)
    assert cluster.mirrored() == [CANARY]
    mirrored = [rule["filters"][-1]["requestMirror"]["backendRef"]["name"] for rule in cluster.route["spec"]["rules"]]
    assert mirrored == [CANARY, CANARY]
    assert edge.route_weight() == 25
    assert all(verdict.allowed for *_, verdict in cluster.server.reviews), cluster.server.reviews


def test_the_stand_in_shows_the_defaulted_mirror_that_the_old_policy_denied(objects: list[dict[str, Any]]) -> None:
    """The bug the kind stand-in hid: the API server defaults the mirror's backendRef, the old policy denied it."""
    cluster = FakeCluster(manifests=before_the_mirror_fix(objects))
    edge = edge_for(cluster, objects)
    edge.start_canary()
    with pytest.raises(ClusterRefusal) as refused:
        edge.set_mirror(True)
    assert refused.value.status == 403
    assert f"ValidatingAdmissionPolicy '{POLICY}' with binding '{POLICY}' denied request" in refused.value.message
    assert f"on HTTPRoute {ROUTE} the rollout controller may change only" in refused.value.message
    assert cluster.mirrored() == []


def test_the_policy_is_a_value(objects: list[dict[str, Any]]) -> None:
    from k8s_tooling import load_documents, render_with

    result = render_with("--set", "admissionPolicy.enabled=false")
    assert result.returncode == 0, result.stderr
    kinds = {obj["kind"] for obj in load_documents(result.stdout)}
    assert kinds.isdisjoint({"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"})
    assert "ValidatingAdmissionPolicy" not in {obj["kind"] for obj in render("secrets-and-pins")}, "no controller"


def test_the_route_in_the_shadow_phase_is_a_valid_standard_channel_httproute(objects: list[dict[str, Any]]) -> None:
    """The rendered route with the controller's mirror added validates against Gateway API v1.2.1 (standard)."""
    route = live(objects, "HTTPRoute", ROUTE)
    shadowing = changed(route, mirror)
    validate_object(shadowing)
    backend = shadowing["spec"]["rules"][0]["filters"][0]["requestMirror"]["backendRef"]
    assert backend == {"name": CANARY, "port": refs(route)[1]["port"]}
    assert remirror(shadowing["spec"]["rules"], CANARY, False) == route["spec"]["rules"]
    with pytest.raises(jsonschema.ValidationError):  # the schema does check filters: a bad one is caught
        validate_object(
            changed(
                route, lambda r: add_filter(r, {"type": "Mirror", "requestMirror": {"backendRef": {"name": CANARY}}})
            )
        )
