"""The rollout controller's Role against the one list of calls it makes (API_PERMISSIONS, edges/kube.py).

Three views must agree: the list, the Role the chart renders, and the requests ClusterEdge really sends while
it drives a rollout against the fake API server (serving/rollout/tests/fake_cluster.py) loaded with the chart's
own objects. An `ast` scan of kube.py makes sure the scenario calls every client method the module uses, so a
new call cannot slip past with no permission behind it, and a permission nothing uses fails as well.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from controller_scenario import CONTROLLER, controller_flags, drive_a_rollout, edge_for
from k8s_tooling import named, render

from serving.rollout.edges import kube
from serving.rollout.edges.kube import API_PERMISSIONS
from serving.rollout.tests.fake_cluster import FakeCluster

VERBS = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}

Grants = dict[tuple[str, str, str], frozenset[str] | None]


def object_names(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The names the chart gives the objects API_PERMISSIONS refers to, read from the controller's arguments."""
    flags = controller_flags(objects)
    return {
        "route": flags["--httproute"],
        "stable": flags["--stable-deployment"],
        "canary": flags["--canary-deployment"],
        "record": flags["--state-configmap"],
    }


def expected_grants(names: dict[str, str]) -> Grants:
    """API_PERMISSIONS as (group, resource, verb) -> the object names it may touch (None: any)."""
    return {
        (p.group, p.resource, p.verb): frozenset(names[o] for o in p.objects) if p.objects else None
        for p in API_PERMISSIONS
    }


def role_grants(role: dict[str, Any]) -> Grants:
    """What a Role's rules grant, per (group, resource, verb): the union of their resourceNames, None for any."""
    grants: Grants = {}
    for rule in role["rules"]:
        names = frozenset(rule.get("resourceNames", []))
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    key = (group, resource, verb)
                    before = grants.get(key, frozenset())
                    grants[key] = None if before is None or not names else before | names
    return grants


def request_attributes(method: str, path: str) -> tuple[str, str, str, str | None]:
    """Return what RBAC sees of one REST call: (apiGroup, resource[/subresource], verb, object name)."""
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    assert rest[0] == "namespaces", path
    resource, name, sub = rest[2], (rest[3:4] or [None])[0], (rest[4:5] or [None])[0]
    verb = ("get" if name else "list") if method == "GET" else VERBS[method]
    return group, f"{resource}/{sub}" if sub else resource, verb, name


def client_methods_in_kube() -> set[str]:
    """Every `self.custom|apps|core.<method>` in edges/kube.py, called there or handed to `ClusterEdge.call`."""
    tree = ast.parse(Path(kube.__file__).read_text())
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "self"
        and node.value.attr in {"custom", "apps", "core"}
    }


class Spy:
    """Forwards to a kubernetes API object and notes the name of every method called on it."""

    def __init__(self, target: Any, seen: set[str]) -> None:
        self.target, self.seen = target, seen

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.target, name)
        if callable(attribute):
            self.seen.add(name)
        return attribute


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render("default")


@pytest.fixture(scope="module")
def scenario(objects: list[dict[str, Any]]) -> tuple[FakeCluster, set[str]]:
    """The fake API server after a whole rollout, and the client methods ClusterEdge called."""
    cluster = FakeCluster(manifests=objects)
    edge = edge_for(cluster, objects)
    seen: set[str] = set()
    edge.custom, edge.apps, edge.core = Spy(edge.custom, seen), Spy(edge.apps, seen), Spy(edge.core, seen)
    drive_a_rollout(edge)
    assert cluster.serving[cluster.stable] == "2"
    assert cluster.weights() == {cluster.stable: 100, cluster.canary: 0}
    assert cluster.state()["stableVersion"] == "2"
    return cluster, seen


def test_the_role_grants_exactly_the_calls_the_controller_makes(objects: list[dict[str, Any]]) -> None:
    role = named(objects, "Role", CONTROLLER)
    assert role_grants(role) == expected_grants(object_names(objects))
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert verbs.isdisjoint({"list", "watch", "update", "delete", "deletecollection", "*"})
    assert all("*" not in rule["resources"] + rule["apiGroups"] for rule in role["rules"])
    binding = named(objects, "RoleBinding", CONTROLLER)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": CONTROLLER, "namespace": "plinth"}]


def test_only_create_goes_without_resource_names() -> None:
    assert {(p.resource, p.verb) for p in API_PERMISSIONS if not p.objects} == {
        ("configmaps", "create"),
        ("events", "create"),
    }


def test_the_scenario_calls_every_client_method_kube_py_uses(scenario: tuple[FakeCluster, set[str]]) -> None:
    _, seen = scenario
    used = client_methods_in_kube()
    assert len(used) >= 10
    assert seen == used


def test_every_request_of_a_rollout_is_granted_and_every_grant_is_used(
    scenario: tuple[FakeCluster, set[str]], objects: list[dict[str, Any]]
) -> None:
    cluster, _ = scenario
    grants = expected_grants(object_names(objects))
    used = set()
    for method, path, _, _ in cluster.requests:
        group, resource, verb, name = request_attributes(method, path)
        key = (group, resource, verb)
        assert key in grants, f"{method} {path}: {key} is not in API_PERMISSIONS"
        names = grants[key]
        assert names is None or name in names, f"{method} {path}: {name} is not among {sorted(names or [])}"
        used.add(key)
    assert used == set(grants), f"granted but never called: {sorted(set(grants) - used)}"


def test_request_attributes_read_paths_as_rbac_does() -> None:
    assert request_attributes("PATCH", "/apis/apps/v1/namespaces/n/deployments/d/scale") == (
        "apps",
        "deployments/scale",
        "patch",
        "d",
    )
    assert request_attributes("POST", "/api/v1/namespaces/n/events") == ("", "events", "create", None)
    assert request_attributes("GET", "/api/v1/namespaces/n/configmaps") == ("", "configmaps", "list", None)
