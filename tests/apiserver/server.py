"""The request router: method, path, query, headers and body in; HTTP status and JSON (or a `Status`) out.

It follows the API server's handler chain for what the controller touches: fault knobs (in place of
authentication and RBAC), the 3 MiB body limit, 404 for a missing namespace or object, the patch type chosen
by Content-Type (415 for strategic merge on a custom resource or an unknown type), the resourceVersion
precondition (409), defaulting, validation (422), the 1 MiB object limit, the installed admission policies
with the defaulted object and oldObject, and only then storage with a new resourceVersion and, on a spec
change, a new generation. Deployments' /status and /scale subresources behave as in apps/v1.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from tests.apiserver import apply, fields, patch, schema
from tests.apiserver.admission import AdmissionPolicy, Verdict
from tests.apiserver.builtin import default
from tests.apiserver.defaults import apply_defaults
from tests.apiserver.errors import (
    MAX_BODY_BYTES,
    MAX_OBJECT_BYTES,
    ApiError,
    already_exists,
    bad_request,
    conflict,
    invalid,
    too_large,
    unsupported_media,
)
from tests.apiserver.faults import Faults
from tests.apiserver.knobs import Knobs
from tests.apiserver.paths import parse
from tests.apiserver.resources import DEPLOYMENT, NAMESPACE, Resource
from tests.apiserver.scale import scale_of, with_scale
from tests.apiserver.store import Clock, Store
from tests.apiserver.workloads import Workloads

VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
# Built-in kinds whose registry strategy keeps metadata.generation (every custom resource does).
GENERATIONS = {
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "NetworkPolicy",
    "Ingress",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
DEFAULT_USER = "system:serviceaccount:plinth:release-plinth-serving-rollout"


class ApiServer(Knobs):
    """The stand-in API server: a store, its workloads, fault knobs and admission policies."""

    def __init__(self, user: str = DEFAULT_USER) -> None:
        self.user = user
        self.clock = Clock()
        self.store = Store(self.clock)
        self.workloads = Workloads(self.store)
        self.faults = Faults()
        self.policies: list[AdmissionPolicy] = []
        # Every matched admission review: (policy, resource, name, subresource, operation, verdict).
        self.reviews: list[tuple[str, str, str, str, str, Verdict]] = []
        self.requests: list[tuple[str, str, Any, str]] = []
        # Whether the request being handled is a dry run (`dryRun=All`): every check, nothing stored.
        self.dry_run = False
        # Warnings of the request being handled (the HTTP layer sends them as `Warning` headers).
        self.warnings: list[str] = []
        self.field_validation = ""

    def api(self, user: str | None = None) -> Any:
        """A real kubernetes ApiClient over this stand-in, as `user` (default: the server's user)."""
        from tests.apiserver.transport import api_client

        return api_client(self, user)

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes | None,
        user: str | None = None,
        record: bool = True,
    ) -> tuple[int, dict[str, Any]]:
        """Answer one request; every refusal is the API server's Status (`record`: log it in `requests`)."""
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        self.warnings, self.dry_run, self.field_validation = [], False, ""
        try:
            if body is not None and len(body) > MAX_BODY_BYTES:
                raise too_large()
            decoded = self.decode(body, content_type)
            if record:
                self.requests.append((method, path, decoded, content_type))
            agent = next((v for k, v in headers.items() if k.lower() == "user-agent"), "")
            return self.route(method, path, query, content_type, decoded, user or self.user, agent.split("/")[0])
        except ApiError as error:
            return error.code, error.status()

    @staticmethod
    def decode(body: bytes | None, content_type: str) -> Any:
        if not body:
            return {}
        try:
            if content_type == "application/apply-patch+yaml":
                return yaml.safe_load(body)
            return json.loads(body)
        except (ValueError, yaml.YAMLError) as error:
            raise bad_request(f"error decoding the request body: {error}") from error

    def route(
        self, method: str, path: str, query: dict[str, str], content_type: str, body: Any, user: str, agent: str
    ) -> tuple[int, dict[str, Any]]:
        resource, namespace, name, sub = parse(path)
        verb = ("get" if name else "list") if method == "GET" else VERBS.get(method, method.lower())
        self.faults.check(verb, resource, namespace, name, sub, user)
        if resource.namespaced and (namespace or method != "GET"):
            self.store.check_namespace(namespace)
        if query.get("dryRun", "All") != "All":
            raise bad_request(f'Invalid value: {json.dumps(query["dryRun"])}: supported values: "All"')
        options = body if method == "DELETE" and isinstance(body, dict) else {}  # DeleteOptions carry it
        self.dry_run = method != "GET" and ("dryRun" in query or "All" in (options.get("dryRun") or []))
        self.field_validation = fields.mode_of(query)
        manager = query.get("fieldManager") or agent or "unknown"
        if method == "GET":
            return 200, self.read(resource, namespace, name, sub)
        if method == "POST" and not name:
            return 201, self.create(resource, namespace, body, user, manager)
        if method == "PUT":
            old = self.store.get(resource, namespace, name)
            return 200, self.write(resource, namespace, name, sub, old, self.replace(old, sub, body), user, manager)
        if method == "PATCH":
            return self.patch(resource, namespace, name, sub, query, content_type, body, user, manager)
        if method == "DELETE":
            return 200, self.delete(resource, namespace, name, user)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def read(self, resource: Resource, namespace: str, name: str, sub: str) -> dict[str, Any]:
        if not name:
            spaces = [namespace] if namespace or not resource.namespaced else sorted(self.store.namespaces)
            items = [copy.deepcopy(o) for ns in spaces for o in self.store.bucket(resource, ns).values()]
            return {"kind": f"{resource.kind}List", "apiVersion": resource.api_version, "metadata": {}, "items": items}
        found = self.store.get(resource, namespace, name)
        if resource is DEPLOYMENT and self.workloads.read(found):
            self.store.touch(resource, namespace, name)
        return scale_of(found) if sub == "scale" else copy.deepcopy(found)

    def create(self, resource: Resource, namespace: str, body: Any, user: str, manager: str) -> dict[str, Any]:
        new = identify(resource, copy.deepcopy(body))
        meta = new.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self.store.generate_name(meta["generateName"])
        if self.store.find(resource, namespace, meta.get("name", "")) is not None:
            raise already_exists(resource, meta["name"])
        return self.write(resource, namespace, meta.get("name", ""), "", None, new, user, manager)

    def replace(self, old: dict[str, Any], sub: str, body: Any) -> dict[str, Any]:
        if sub == "scale":
            return with_scale(old, body)
        return copy.deepcopy(body)

    def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        sub: str,
        query: dict[str, str],
        content_type: str,
        body: Any,
        user: str,
        manager: str,
    ) -> tuple[int, dict[str, Any]]:
        old = self.store.find(resource, namespace, name)
        if content_type == "application/apply-patch+yaml":
            if "fieldManager" not in query:
                raise bad_request(
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
                )
            applied = identify(resource, copy.deepcopy(body))
            if applied.get("metadata", {}).get("name") != name:
                raise bad_request(
                    f"the name of the object ({applied.get('metadata', {}).get('name')}) does not match "
                    f"the name on the URL ({name})"
                )
            force = query.get("force", "false").lower() == "true"
            base = (
                old
                if old is not None
                else {"apiVersion": resource.api_version, "kind": resource.kind, "metadata": {"name": name}}
            )
            new = apply.server_side_apply(
                base,
                applied,
                query["fieldManager"],
                force,
                schema.root(resource),
                resource.is_crd,
                self.clock.stamp(),
                lambda obj: defaulted(resource, obj),
            )
            return (200 if old else 201), self.write(
                resource, namespace, name, sub, old, new, user, manager, applied=True
            )
        if old is None:
            raise self.missing(resource, name)
        current: dict[str, Any] = scale_of(old) if sub == "scale" else copy.deepcopy(old)
        if content_type == "application/merge-patch+json":
            result = patch.merge_patch(current, body)
        elif content_type == "application/json-patch+json":
            result = patch.json_patch(current, body)
        elif content_type == "application/strategic-merge-patch+json" and not resource.is_crd:
            node = schema.root(resource) if sub != "scale" else {}
            result = patch.strategic_merge(current, body, node)
        else:
            accepted = tuple(t for t in apply_types(resource))
            raise unsupported_media(content_type, accepted)
        if not isinstance(result, dict):
            raise bad_request("the patch does not result in an object")
        new = with_scale(old, result) if sub == "scale" else result
        stored = self.write(resource, namespace, name, sub, old, new, user, manager)
        return 200, scale_of(stored) if sub == "scale" else stored

    def missing(self, resource: Resource, name: str) -> ApiError:
        from tests.apiserver.errors import not_found

        return not_found(resource, name)

    def write(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        sub: str,
        old: dict[str, Any] | None,
        new: dict[str, Any],
        user: str,
        manager: str,
        applied: bool = False,
    ) -> dict[str, Any]:
        """Precondition, defaults, validation, size, admission, then storage (the API server's order)."""
        new = identify(resource, new)
        meta = new.setdefault("metadata", {})
        if meta.get("name", name) != name and old is not None:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        if meta.get("namespace", namespace) != namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if old is not None:
            wanted = meta.get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise conflict(resource, name)
            for key in ("uid", "creationTimestamp", "generation"):
                if key in old["metadata"]:
                    meta[key] = old["metadata"][key]
                else:
                    meta.pop(key, None)
            if sub == "status":
                new = {**copy.deepcopy(old), "status": new.get("status")}
                meta = new["metadata"]
            elif "status" in resource.subresources:
                new["status"] = copy.deepcopy(old.get("status"))
                if new["status"] is None:
                    new.pop("status")
        elif "status" in resource.subresources:
            new.pop("status", None)
        meta["name"] = name
        if resource.namespaced:
            meta["namespace"] = namespace
        if not applied:
            meta["managedFields"] = copy.deepcopy((old or {}).get("metadata", {}).get("managedFields") or [])
        apply_defaults(resource.kind, new, schema.root(resource) if resource.is_crd else None)
        default(resource.kind, new, old)
        causes, warnings = fields.undeclared(schema.validate(resource, new, old), new, self.field_validation)
        self.warnings += warnings
        if warnings or self.field_validation == "Ignore":
            causes = schema.validate(resource, new, old)
        if not causes and schema.object_size(new) > MAX_OBJECT_BYTES:
            causes = [
                {
                    "reason": "FieldValueTooLong",
                    "message": f"Too long: must have at most {MAX_OBJECT_BYTES} bytes",
                    "field": "",
                }
            ]
        if causes:
            raise invalid(resource, name, causes)
        if not applied:
            apply.track_update(
                old, new, manager, schema.root(resource), resource.is_crd, self.clock.stamp(), resource.api_version, sub
            )
        self.generation(resource, old, new)
        self.admit(resource, namespace, name, sub, "CREATE" if old is None else "UPDATE", new, old, user)
        if self.dry_run:
            return self.store.dry(resource, namespace, new, created=old is None)
        before = copy.deepcopy(old)
        stored = self.store.put(resource, namespace, new, created=old is None)
        if resource is DEPLOYMENT and sub != "status":
            self.workloads.written(before, stored)
        self.stored(resource, stored)
        return copy.deepcopy(stored)

    def admit(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        sub: str,
        operation: str,
        new: dict[str, Any] | None,
        old: dict[str, Any] | None,
        user: str,
    ) -> None:
        """Every installed policy reviews the request; the first denial refuses it (failurePolicy Fail)."""
        labels = self.store.namespaces[namespace] if resource.namespaced else {}
        if sub == "scale":  # admission sees the autoscaling/v1 Scale written, not the Deployment behind it
            new, old = (scale_of(new) if new else None), (scale_of(old) if old else None)
        for policy in [*self.policies, *self.store.policies()]:
            verdict = policy.review(
                new,
                old,
                user=user,
                namespace=namespace,
                operation=operation,
                sub_resource=sub,
                namespace_labels=labels,
                resource=resource,
            )
            if verdict.matched:
                self.reviews.append((policy.name, resource.plural, name, sub, operation, verdict))
            if verdict.denied:
                raise policy.refusal(verdict, resource, name)

    def stored(self, resource: Resource, obj: dict[str, Any]) -> None:
        """What a stored object changes in the server itself: a Namespace's labels (namespace selectors)."""
        if resource is NAMESPACE:
            self.store.namespaces[obj["metadata"]["name"]] = dict(obj["metadata"].get("labels") or {})

    @staticmethod
    def generation(resource: Resource, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """Generation 1 on create, +1 on a spec change (a Deployment's annotations too), for kinds that keep one."""
        if not resource.is_crd and resource.kind not in GENERATIONS:
            return
        meta = new["metadata"]
        if old is None:
            meta["generation"] = 1
            return
        body = {k: v for k, v in new.items() if k not in ("metadata", "status")}
        was = {k: v for k, v in old.items() if k not in ("metadata", "status")}
        annotations = resource is DEPLOYMENT and meta.get("annotations") != old["metadata"].get("annotations")
        meta["generation"] = old["metadata"].get("generation", 1) + (1 if body != was or annotations else 0)

    def delete(self, resource: Resource, namespace: str, name: str, user: str) -> dict[str, Any]:
        old = self.store.get(resource, namespace, name)
        self.admit(resource, namespace, name, "", "DELETE", None, old, user)
        details = {"name": name, "kind": resource.plural, "uid": old["metadata"].get("uid")}
        if self.dry_run:
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
        self.store.remove(resource, namespace, name)
        if resource is NAMESPACE:
            self.store.drop_namespace(name)
        if resource is DEPLOYMENT:
            self.workloads.serving[name] = None
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def defaulted(resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    """A defaulted copy of an object, as the API server would store it."""
    found = copy.deepcopy(obj)
    apply_defaults(resource.kind, found, schema.root(resource) if resource.is_crd else None)
    default(resource.kind, found, None)
    return found


def apply_types(resource: Resource) -> list[str]:
    """The patch types a kind takes: strategic merge only for built-in kinds."""
    types = ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
    return types if resource.is_crd else [*types, "application/strategic-merge-patch+json"]


def identify(resource: Resource, obj: Any) -> dict[str, Any]:
    """Fill apiVersion and kind from the URL where the body leaves them out; refuse a body of another kind."""
    if not isinstance(obj, dict):
        raise bad_request("the body of the request must be an object")
    version = obj.setdefault("apiVersion", resource.api_version)
    kind = obj.setdefault("kind", resource.kind)
    if (version != resource.api_version or kind != resource.kind) and kind != "Scale":
        raise bad_request(
            f"the API version in the data ({obj['apiVersion']}) does not match the expected API version "
            f"({resource.api_version})"
        )
    return obj
