"""Each patch type as the API server takes it, by Content-Type, and server-side apply's ownership."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.apiserver import ApiServer
from tests.apiserver.test_writes import NS, deployment, route

DEPLOY = f"/apis/apps/v1/namespaces/{NS}/deployments"
ROUTES = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes"


def send(server: ApiServer, method: str, path: str, body: Any, kind: str, user: str | None = None, **query: str) -> Any:
    raw = yaml.safe_dump(body).encode() if kind.endswith("yaml") else json.dumps(body).encode()
    return server.handle(method, path, query, {"Content-Type": kind}, raw, user)


@pytest.fixture
def server() -> ApiServer:
    server = ApiServer()
    server.store.add_namespace(NS)
    assert send(server, "POST", DEPLOY, deployment(), "application/json")[0] == 201
    assert send(server, "POST", ROUTES, route(), "application/json")[0] == 201
    return server


def env(obj: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"][0]["env"]
    return result


def test_strategic_merge_merges_env_by_name_and_honours_directives(server: ApiServer) -> None:
    patch = {
        "metadata": {"annotations": {"x": "1"}},
        "spec": {"template": {"spec": {"containers": [{"name": "main", "env": [{"name": "B", "value": "3"}]}]}}},
    }
    code, stored = send(server, "PATCH", f"{DEPLOY}/app", patch, "application/strategic-merge-patch+json")
    assert code == 200
    assert env(stored) == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]
    delete = {
        "spec": {"template": {"spec": {"containers": [{"name": "main", "env": [{"name": "A", "$patch": "delete"}]}]}}}
    }
    _, stored = send(server, "PATCH", f"{DEPLOY}/app", delete, "application/strategic-merge-patch+json")
    assert env(stored) == [{"name": "B", "value": "3"}]
    replace = {"metadata": {"annotations": {"$patch": "replace", "y": "2"}}}
    _, stored = send(server, "PATCH", f"{DEPLOY}/app", replace, "application/strategic-merge-patch+json")
    assert stored["metadata"]["annotations"] == {"y": "2"}


def test_merge_patch_replaces_lists_and_null_deletes(server: ApiServer) -> None:
    patch = {"metadata": {"labels": {"a": "b"}}, "spec": {"template": {"spec": {"containers": [{"name": "main"}]}}}}
    code, status = send(server, "PATCH", f"{DEPLOY}/app", patch, "application/merge-patch+json")
    assert code == 422, "the container list is replaced whole: the image is gone"
    assert status["details"]["causes"][0]["field"] == "spec.template.spec.containers[0].image"
    _, stored = send(
        server, "PATCH", f"{DEPLOY}/app", {"metadata": {"labels": {"a": "b"}}}, "application/merge-patch+json"
    )
    _, stored = send(
        server, "PATCH", f"{DEPLOY}/app", {"metadata": {"labels": {"a": None}}}, "application/merge-patch+json"
    )
    assert "a" not in (stored["metadata"].get("labels") or {})


def test_json_patch_applies_the_six_operations_and_a_failed_test_changes_nothing(server: ApiServer) -> None:
    ops = [
        {"op": "test", "path": "/spec/rules/0/backendRefs/0/weight", "value": 90},
        {"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 70},
        {"op": "add", "path": "/metadata/labels", "value": {"x": "1"}},
        {"op": "copy", "from": "/metadata/labels", "path": "/metadata/annotations"},
        {"op": "move", "from": "/metadata/annotations/x", "path": "/metadata/annotations/y"},
        {"op": "remove", "path": "/metadata/labels/x"},
    ]
    code, stored = send(server, "PATCH", f"{ROUTES}/web", ops, "application/json-patch+json")
    assert code == 200
    assert stored["spec"]["rules"][0]["backendRefs"][0]["weight"] == 70
    assert (stored["metadata"]["labels"], stored["metadata"]["annotations"]) == ({}, {"y": "1"})
    code, _ = send(server, "PATCH", f"{ROUTES}/web", ops[:2], "application/json-patch+json")
    assert code == 422
    assert server.store.objects["httproutes"][NS]["web"]["spec"]["rules"][0]["backendRefs"][0]["weight"] == 70


def test_strategic_merge_on_a_custom_resource_and_unknown_types_are_415(server: ApiServer) -> None:
    code, status = send(server, "PATCH", f"{ROUTES}/web", {"spec": {}}, "application/strategic-merge-patch+json")
    assert (code, status["reason"]) == (415, "UnsupportedMediaType")
    assert "application/strategic-merge-patch+json" not in status["message"]
    code, _ = send(server, "PATCH", f"{DEPLOY}/app", {"spec": {}}, "text/plain")
    assert code == 415


def applied(replicas: int | None = None, annotation: str | None = None) -> dict[str, Any]:
    obj = deployment()
    if replicas is not None:
        obj["spec"]["replicas"] = replicas
    if annotation is not None:
        obj["spec"]["template"]["metadata"]["annotations"] = {"note": annotation}
    return obj


def test_server_side_apply_owns_fields_conflicts_and_forces(server: ApiServer) -> None:
    apply = "application/apply-patch+yaml"
    server.remove("deployments", NS, "app")  # created by apply below, as a GitOps agent creates it
    code, stored = send(server, "PATCH", f"{DEPLOY}/other", {**applied(2), "metadata": {"name": "other"}}, apply)
    assert (code, stored["reason"]) == (400, "BadRequest"), "fieldManager is required"
    code, stored = send(server, "PATCH", f"{DEPLOY}/app", applied(2, "a"), apply, fieldManager="gitops")
    assert code == 201
    managers = {(e["manager"], e["operation"]) for e in stored["metadata"]["managedFields"]}
    assert ("gitops", "Apply") in managers
    assert ("OpenAPI-Generator", "Update") not in managers  # a raw request without a User-Agent
    scale = {"spec": {"replicas": 5}}
    send(server, "PATCH", f"{DEPLOY}/app/scale", scale, "application/merge-patch+json", fieldManager="controller")
    code, status = send(server, "PATCH", f"{DEPLOY}/app", applied(2, "a"), apply, fieldManager="gitops")
    assert (code, status["reason"]) == (409, "Conflict")
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "controller" using apps/v1: .spec.replicas'
    assert status["details"]["causes"][0]["field"] == ".spec.replicas"
    code, stored = send(server, "PATCH", f"{DEPLOY}/app", applied(None, "a"), apply, fieldManager="gitops")
    assert (code, stored["spec"]["replicas"]) == (200, 5), "an omitted field another manager owns stays"
    code, stored = send(server, "PATCH", f"{DEPLOY}/app", applied(2, "a"), apply, fieldManager="gitops", force="true")
    assert (code, stored["spec"]["replicas"]) == (200, 2)
    code, stored = send(server, "PATCH", f"{DEPLOY}/app", applied(2), apply, fieldManager="gitops")
    assert (
        "annotations" not in stored["spec"]["template"]["metadata"]
        or stored["spec"]["template"]["metadata"]["annotations"] == {}
    ), "a field the manager stopped applying is removed"


def test_apply_keeps_another_managers_map_key_and_takes_an_atomic_list_whole(server: ApiServer) -> None:
    apply = "application/apply-patch+yaml"
    server.remove("deployments", NS, "app")
    server.remove("httproutes", NS, "web")
    send(server, "PATCH", f"{DEPLOY}/app", applied(1, "a"), apply, fieldManager="gitops")
    stamp = {"spec": {"template": {"metadata": {"annotations": {"stamp": "3"}}}}}
    send(server, "PATCH", f"{DEPLOY}/app", stamp, "application/strategic-merge-patch+json", fieldManager="controller")
    _, stored = send(server, "PATCH", f"{DEPLOY}/app", applied(1, "b"), apply, fieldManager="gitops")
    assert stored["spec"]["template"]["metadata"]["annotations"] == {"note": "b", "stamp": "3"}
    send(server, "PATCH", f"{ROUTES}/web", route(), apply, fieldManager="gitops")
    rules = route()["spec"]["rules"]
    rules[0]["backendRefs"][0]["weight"] = 1
    send(
        server, "PATCH", f"{ROUTES}/web", {"spec": {"rules": rules}}, "application/merge-patch+json", fieldManager="ctl"
    )
    code, status = send(server, "PATCH", f"{ROUTES}/web", route(), apply, fieldManager="gitops")
    assert code == 409
    assert status["details"]["causes"][0]["field"] == ".spec.rules"
