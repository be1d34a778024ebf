"""The discovery documents kubectl reads before anything else: `/version`, `/api`, `/apis` and each group version.

kubectl first asks `/api` and `/apis` for the aggregated form (`Accept: application/json;g=apidiscovery.k8s.io;
v=v2;as=APIGroupDiscoveryList,...,application/json`); an API server that answers with plain `application/json`
(the legacy APIVersions / APIGroupList) makes it fall back to one `APIResourceList` per group version, which is
what the stand-in serves. Only the resources of `resources.RESOURCES` are listed, so kubectl maps every other
kind to `the server doesn't have a resource type` / `no matches for kind` as against a cluster without it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tests.apiserver.paths import unknown
from tests.apiserver.resources import RESOURCES, Resource

VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-plinth-standin",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SUB_VERBS = ["get", "patch", "update"]
# kubectl asks the CRD kind's document whether a kind it finds no document for takes fieldValidation.
CRD_GROUP_VERSION = "apiextensions.k8s.io/v1"
CRD_KIND = [Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition")]
QUERY = ("dryRun", "fieldManager", "fieldValidation", "force")


def versions() -> dict[str, list[Resource]]:
    """The served resources by group version (`v1`, `apps/v1`, ...)."""
    found: dict[str, list[Resource]] = defaultdict(list)
    for resource in RESOURCES.values():
        found[resource.api_version].append(resource)
    return found


def group_list() -> dict[str, Any]:
    """`/apis`: every named group with its one served version, preferred."""
    groups: dict[str, list[str]] = defaultdict(list)
    for resource in RESOURCES.values():
        if resource.group and resource.version not in groups[resource.group]:
            groups[resource.group].append(resource.version)
    items = []
    for name, served in sorted(groups.items()):
        listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in served]
        items.append({"name": name, "versions": listed, "preferredVersion": listed[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": items}


def resource_list(group_version: str) -> dict[str, Any]:
    """`/api/v1`, `/apis/<group>/<version>`: each resource and subresource with its verbs."""
    served = versions().get(group_version)
    if not served:
        raise unknown()
    listed: list[dict[str, Any]] = []
    for r in sorted(served, key=lambda r: r.plural):
        entry = {"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced, "kind": r.kind}
        listed.append({**entry, "verbs": VERBS, **({"shortNames": list(r.short_names)} if r.short_names else {})})
        for sub in r.subresources:
            kind = "Scale" if sub == "scale" else r.kind
            group = {"group": "autoscaling", "version": "v1"} if sub == "scale" else {}
            listed.append(
                {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced, "kind": kind, **group}
                | {"verbs": SUB_VERBS}
            )
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": listed}


def openapi_v3(path: str) -> dict[str, Any]:
    """`/openapi/v3` and its group-version documents, as much as kubectl reads of them.

    kubectl asks them whether a kind's PATCH takes `fieldValidation` (then the server validates and it sends
    `fieldValidation=Strict`); each document holds every path with its operations' GVK and query parameters,
    and no component schemas (`kubectl explain` finds nothing to explain).
    """
    if path == "/openapi/v3":
        listed = {f"{'api' if '/' not in gv else 'apis'}/{gv}": gv for gv in [*versions(), CRD_GROUP_VERSION]}
        return {"paths": {key: {"serverRelativeURL": f"/openapi/v3/{key}?hash=standin"} for key in listed}}
    key = path.removeprefix("/openapi/v3/")
    group_version = key.split("/", 1)[1] if key.startswith(("api/", "apis/")) else ""
    served = versions().get(group_version) or (CRD_KIND if group_version == CRD_GROUP_VERSION else [])
    if not served:
        raise unknown()
    params = [{"name": n, "in": "query", "schema": {"type": "string"}} for n in QUERY]
    paths = {}
    for r in served:
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        where = f"/{key}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"/{key}/{r.plural}"
        operation = {"x-kubernetes-group-version-kind": gvk, "parameters": params}
        paths[where] = {"get": operation, "post": operation}
        paths[f"{where}/{{name}}"] = {v: operation for v in ("get", "put", "patch", "delete")}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]}, "paths": paths}


def definitions() -> dict[str, Any]:
    """The CustomResourceDefinitionList kubectl reads while validating a kind it cannot map: the chart's CRDs."""
    items = []
    for r in RESOURCES.values():
        if r.is_crd:
            names = {"plural": r.plural, "singular": r.kind.lower(), "kind": r.kind, "listKind": f"{r.kind}List"}
            spec = {"group": r.group, "names": names, "scope": "Namespaced"}
            version = {"name": r.version, "served": True, "storage": True}
            meta = {"name": r.qualified}
            items.append(
                {"apiVersion": CRD_GROUP_VERSION, "kind": "CustomResourceDefinition", "metadata": meta}
                | {"spec": {**spec, "versions": [version]}}
            )
    return {"apiVersion": CRD_GROUP_VERSION, "kind": "CustomResourceDefinitionList", "metadata": {}, "items": items}


def field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (the payloads here are all under 128 bytes)."""
    return bytes([number << 3 | 2, len(payload)]) + payload


def openapi_v2() -> bytes:
    """`/openapi/v2` as the gnostic protobuf kubectl asks for: a Swagger 2.0 document with no definitions.

    kubectl validates a kind it cannot find in /openapi/v3 against this; it knows no kind, so every kind passes
    on to the REST mapping, which refuses an unknown one (`no matches for kind`), as against a cluster.
    """
    info = field(1, b"Kubernetes") + field(2, VERSION["gitVersion"].encode())
    return field(1, b"2.0") + field(2, info) + field(8, b"")


def answer(path: str, host: str) -> dict[str, Any] | bytes | None:
    """The discovery document at `path`, None when `path` is not a discovery path (404 for an unknown group)."""
    path = "/" + path.strip("/")
    if path == "/openapi/v2":
        return openapi_v2()
    if path.startswith("/openapi/v3"):
        return openapi_v3(path)
    if path == f"/apis/{CRD_GROUP_VERSION}/customresourcedefinitions":
        return definitions()
    if path == "/version":
        return dict(VERSION)
    if path == "/api":
        where = [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": where}
    if path == "/apis":
        return group_list()
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) == 2:
        return resource_list(parts[1])
    if parts[0] == "apis" and len(parts) == 2:
        found = next((g for g in group_list()["groups"] if g["name"] == parts[1]), None)
        if found is None:
            raise unknown()
        return {"kind": "APIGroup", "apiVersion": "v1", **found}
    if parts[0] == "apis" and len(parts) == 3:
        return resource_list(f"{parts[1]}/{parts[2]}")
    return None
