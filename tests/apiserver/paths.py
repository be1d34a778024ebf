"""REST paths as the API server reads them: group, version, namespace, resource, name and subresource.

`/api/v1/namespaces/ns/configmaps/name`, `/apis/apps/v1/namespaces/ns/deployments/name/scale`, a
cluster-scoped `/apis/rbac.authorization.k8s.io/v1/clusterroles/name`, the namespace itself
`/api/v1/namespaces/ns`, and a namespaced resource listed across namespaces `/apis/apps/v1/deployments`.
A path naming no served resource (an unknown group, version, kind or subresource) is the API server's 404.
"""

from __future__ import annotations

from tests.apiserver.errors import ApiError
from tests.apiserver.resources import RESOURCES, Resource

ALL_NAMESPACES = ""


def unknown() -> ApiError:
    """The 404 of a path that names no resource the server has."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def split(path: str) -> tuple[str, str, list[str]]:
    """`/apis/apps/v1/rest...` as ("apps", "v1", rest)."""
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) >= 2:
        return "", parts[1], parts[2:]
    if parts[0] == "apis" and len(parts) >= 3:
        return parts[1], parts[2], parts[3:]
    raise unknown()


def served(group: str, version: str, plural: str) -> Resource:
    """The resource a group, version and plural name (404 when the server has none)."""
    resource = RESOURCES.get((group, plural))
    if resource is None or resource.version != version:
        raise unknown()
    return resource


def parse(path: str) -> tuple[Resource, str, str, str]:
    """A resource path as (resource, namespace, name, subresource); namespace "" for cluster scope or all."""
    group, version, rest = split(path)
    namespace = ALL_NAMESPACES
    if len(rest) >= 3 and rest[0] == "namespaces" and (group, rest[2]) in RESOURCES and rest[2] != "namespaces":
        namespace, rest = rest[1], rest[2:]
        resource = served(group, version, rest[0])
        if not resource.namespaced:
            raise unknown()
    elif rest:
        resource = served(group, version, rest[0])
    else:
        raise unknown()
    if len(rest) > 3:
        raise unknown()
    name, sub = (rest[1:2] or [""])[0], (rest[2:3] or [""])[0]
    if sub and sub not in resource.subresources:
        raise unknown()
    return resource, namespace, name, sub
