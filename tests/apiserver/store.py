"""The stand-in's etcd: objects by resource, namespace and name, one global resourceVersion counter, a clock.

Every write gets the next resourceVersion of one counter, as etcd's revision is global; uid and
creationTimestamp are set once on create. The clock is the stand-in's own (a test advances it), so what
depends on time (a Deployment's progress deadline, managedFields' times) needs no sleeps.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.apiserver.admission import AdmissionPolicy, install
from tests.apiserver.errors import ApiError, not_found
from tests.apiserver.resources import BY_KIND, NAMESPACE, Resource

START = datetime(2025, 1, 1, tzinfo=UTC)


class Clock:
    """Stand-in time in seconds since START; only a test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds

    def stamp(self) -> str:
        """The time now as the API server writes it (RFC 3339, seconds, Z)."""
        return (START + timedelta(seconds=self.now)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """Objects in memory; the dicts are live (a test may read or edit them as it would with etcdctl)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.objects: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        self.namespaces: dict[str, dict[str, str]] = {}
        self.versions = itertools.count(100)
        self.names = itertools.count(1)
        self.installed: tuple[tuple[str, ...], list[AdmissionPolicy]] = ((), [])

    def add_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Create a namespace (with the kubernetes.io/metadata.name label the API server sets)."""
        self.namespaces[name] = {**(labels or {}), "kubernetes.io/metadata.name": name}
        meta = {"name": name, "labels": dict(self.namespaces[name])}
        found = {"apiVersion": "v1", "kind": "Namespace", "metadata": meta, "spec": {"finalizers": ["kubernetes"]}}
        self.put(NAMESPACE, "", {**found, "status": {"phase": "Active"}}, created=True)

    def drop_namespace(self, name: str) -> None:
        """A deleted namespace takes its objects along (at once: the stand-in has no termination phase)."""
        self.namespaces.pop(name, None)
        for buckets in self.objects.values():
            buckets.pop(name, None)

    def policies(self) -> list[AdmissionPolicy]:
        """The ValidatingAdmissionPolicies stored with their bindings (compiled once per set of versions)."""
        stored = [
            o
            for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
            for o in self.bucket(BY_KIND[("admissionregistration.k8s.io/v1", kind)], "").values()
        ]
        versions = tuple(o["metadata"]["resourceVersion"] for o in stored)
        if versions != self.installed[0]:
            self.installed = (versions, install(stored))
        return self.installed[1]

    def bucket(self, resource: Resource, namespace: str) -> dict[str, dict[str, Any]]:
        """The live dict of one resource's objects in one namespace, by name."""
        return self.objects.setdefault(resource.plural, {}).setdefault(namespace, {})

    def check_namespace(self, namespace: str) -> None:
        if namespace not in self.namespaces:
            raise ApiError(
                404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"}
            )

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        """The stored object, or the API server's 404."""
        found = self.bucket(resource, namespace).get(name)
        if found is None:
            raise not_found(resource, name)
        return found

    def find(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        return self.bucket(resource, namespace).get(name)

    def generate_name(self, prefix: str) -> str:
        """A name from `generateName`: the prefix and a 5-character suffix."""
        return f"{prefix}{next(self.names):05x}"

    def put(self, resource: Resource, namespace: str, obj: dict[str, Any], created: bool) -> dict[str, Any]:
        """Store an object with the next resourceVersion (uid and creationTimestamp on create)."""
        meta = obj.setdefault("metadata", {})
        if created:
            meta["uid"] = str(uuid.UUID(int=next(self.names)))
            meta["creationTimestamp"] = self.clock.stamp()
        if resource.namespaced:
            meta["namespace"] = namespace
        meta["resourceVersion"] = str(next(self.versions))
        bucket = self.bucket(resource, namespace)
        if meta["name"] in bucket and bucket[meta["name"]] is not obj:
            # keep the dict a test holds live: replace its contents in place
            bucket[meta["name"]].clear()
            bucket[meta["name"]].update(obj)
            return bucket[meta["name"]]
        bucket[meta["name"]] = obj
        return obj

    def dry(self, resource: Resource, namespace: str, obj: dict[str, Any], created: bool) -> dict[str, Any]:
        """The object as `put` would store it, stored nowhere (a dry run: no resourceVersion on create)."""
        found = copy.deepcopy(obj)
        meta = found.setdefault("metadata", {})
        if created:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = self.clock.stamp()
            meta.pop("resourceVersion", None)
        if resource.namespaced:
            meta["namespace"] = namespace
        return found

    def touch(self, resource: Resource, namespace: str, name: str) -> None:
        """A write by somebody else that changes nothing but the resourceVersion."""
        self.get(resource, namespace, name)["metadata"]["resourceVersion"] = str(next(self.versions))

    def remove(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        """Delete an object (404 when absent)."""
        self.get(resource, namespace, name)
        return self.bucket(resource, namespace).pop(name)
