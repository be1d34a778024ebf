"""Cluster edge: the canary's weight lives in a Gateway API HTTPRoute; the tracks are two Deployments.

Git's desired version is read from the canary Deployment; the controller's record is a ConfigMap it creates
and owns (`core/state.py`); the stable is rolled out by stamping the version on its pod template. Weights are
set by a JSON merge patch of the route's rules carrying the resourceVersion read just before, so a
concurrent edit makes the API answer 409 and the patch is redone on the fresh object instead of silently
overwriting it; record writes carry theirs the same way. Every change is also an Event on the HTTPRoute
(`kubectl describe httproute`).

Nothing here waits: starting the canary or rolling the stable out only asks for it, and the loop reads the
Deployment's rollout status on its next ticks, so no tick lasts longer than its few API calls (each bounded
by `request_timeout`). An API answer that is not a conflict (an admission denial, 403, 404, 422, 5xx) is
raised as `ClusterRefusal`, naming the call and the API server's reason, for the loop to count and end on.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from serving.rollout.core.reconcile import ClusterRefusal, Desired, Readiness, StateConflict
from serving.rollout.core.state import RETRY_ANNOTATION, State

LOG = logging.getLogger("plinth.rollout")
GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"
# Stamped on the stable's pod template: the version its pods were rolled out to load from the record.
SERVED_ANNOTATION = "plinth.dev/served-version"
MODEL_VERSION_ENV, MODEL_ALIAS_ENV = "PLINTH_MODEL_VERSION", "PLINTH_MODEL_ALIAS"
COMPONENT = "plinth-rollout"
# Connect and read timeout of every API call, seconds: a tick never hangs on an API server that does not answer.
REQUEST_TIMEOUT_S = 5.0


class ApiPermission(NamedTuple):
    """One kind of call to the Kubernetes API, as RBAC authorizes it."""

    group: str
    resource: str
    verb: str
    # Which of the edge's objects it is made on ("route", "stable", "canary", "record"); empty: any name,
    # for a create (RBAC cannot name an object that does not exist yet).
    objects: tuple[str, ...]


# Every call ClusterEdge makes, and nothing more: the chart's Role (helm/plinth-serving/templates/role.yaml)
# grants exactly these, and tests/k8s/test_rbac.py holds both the Role and every request of a scenario
# against the fake API server to this list.
API_PERMISSIONS: tuple[ApiPermission, ...] = (
    ApiPermission(GROUP, PLURAL, "get", ("route",)),
    ApiPermission(GROUP, PLURAL, "patch", ("route",)),  # the backend weights and the shadow phase's mirror filter
    ApiPermission("apps", "deployments", "get", ("stable", "canary")),
    ApiPermission("apps", "deployments", "patch", ("stable",)),  # the served-version pod annotation
    ApiPermission("apps", "deployments/scale", "patch", ("canary",)),
    ApiPermission("apps", "deployments/status", "get", ("stable", "canary")),
    ApiPermission("", "configmaps", "get", ("record",)),
    ApiPermission("", "configmaps", "patch", ("record",)),
    ApiPermission("", "configmaps", "create", ()),
    ApiPermission("", "events", "create", ()),
)


class RouteError(RuntimeError):
    """The HTTPRoute does not reference the stable and canary Services; the message says which."""


def reweigh(rules: list[dict[str, Any]], stable: str, canary: str, weight: int) -> list[dict[str, Any]]:
    """Return the rules with canary backends at `weight` and stable backends at 100 - `weight`."""
    updated, found = copy.deepcopy(rules), set()
    for rule in updated:
        for ref in rule.get("backendRefs", []):
            if ref.get("name") in (stable, canary):
                ref["weight"] = weight if ref["name"] == canary else 100 - weight
                found.add(ref["name"])
    missing = {stable, canary} - found
    if missing:
        raise RouteError(f"HTTPRoute has no backendRef for Service(s) {', '.join(sorted(missing))}")
    return updated


def mirror_filter(ref: dict[str, Any]) -> dict[str, Any]:
    """Return the Gateway API `RequestMirror` filter (standard channel) that copies a rule's requests to `ref`.

    Envoy-based gateways send the copy with `-shadow` appended to the Host header; the model service
    recognises that as well as the local router's `x-plinth-mirror: 1`.
    """
    backend = {key: ref[key] for key in ("name", "port") if key in ref}
    return {"type": "RequestMirror", "requestMirror": {"backendRef": backend}}


def is_mirror_to(item: dict[str, Any], canary: str) -> bool:
    """Return whether a rule filter is a RequestMirror to the canary Service."""
    backend = item.get("requestMirror", {}).get("backendRef", {})
    return item.get("type") == "RequestMirror" and backend.get("name") == canary


def remirror(rules: list[dict[str, Any]], canary: str, on: bool) -> list[dict[str, Any]]:
    """Return the rules with a RequestMirror to the canary on every rule that routes to it (`on`), or none.

    Only that filter is added or removed: every other filter of a rule stays as Git set it.
    """
    updated, found = copy.deepcopy(rules), False
    for rule in updated:
        refs = [ref for ref in rule.get("backendRefs", []) if ref.get("name") == canary]
        if not refs:
            continue
        found = True
        kept = [item for item in rule.get("filters", []) if not is_mirror_to(item, canary)]
        if on:
            kept.append(mirror_filter(refs[0]))
        if kept:
            rule["filters"] = kept
        else:
            rule.pop("filters", None)
    if not found:
        raise RouteError(f"HTTPRoute has no backendRef for Service {canary}")
    return updated


def refusal(call: str, error: ApiException) -> ClusterRefusal:
    """Return the refusal of `call` with the API server's own words (its Status message, else the reason)."""
    message = error.reason or ""
    try:
        body = json.loads(error.body or "{}")
    except ValueError:
        body = {}
    if isinstance(body, dict) and body.get("message"):
        message = str(body["message"])
    return ClusterRefusal(call, error.status or 0, message.splitlines()[0][:300] if message else "")


def stalled(deployment: Any) -> str | None:
    """Return why a Deployment will not finish rolling out on its own (its Progressing condition), else None."""
    for condition in deployment.status.conditions or []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            return f"Deployment {deployment.metadata.name}: ProgressDeadlineExceeded: {condition.message or ''}".strip()
    return None


class ClusterEdge:
    """The reconcile loop's view of a cluster: HTTPRoute weights, the two Deployments, the record, Events."""

    def __init__(
        self,
        api: ApiClient,
        namespace: str,
        httproute: str,
        stable_service: str,
        canary_service: str,
        canary_deployment: str,
        stable_deployment: str,
        state_configmap: str,
        canary_pods: int = 1,
        request_timeout: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.custom, self.apps, self.core = CustomObjectsApi(api), AppsV1Api(api), CoreV1Api(api)
        self.namespace, self.httproute = namespace, httproute
        self.stable_service, self.canary_service = stable_service, canary_service
        self.canary_deployment, self.stable_deployment = canary_deployment, stable_deployment
        self.state_configmap, self.canary_pods = state_configmap, canary_pods
        self.timeout = request_timeout

    def call(self, what: str, method: Callable[..., Any], *args: Any, passthrough: tuple[int, ...] = ()) -> Any:
        """Make one API call within the request timeout; any refusal but `passthrough` is a ClusterRefusal."""
        try:
            return method(*args, _request_timeout=self.timeout)
        except ApiException as error:
            if error.status in passthrough:
                raise
            raise refusal(what, error) from error

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        """Emit an Event on the HTTPRoute; a failure to emit is logged, never fatal."""
        now = datetime.now(UTC)
        body = {
            "metadata": {"generateName": f"{self.httproute}."},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "HTTPRoute",
                "name": self.httproute,
                "namespace": self.namespace,
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
            "source": {"component": COMPONENT},
        }
        try:
            self.core.create_namespaced_event(self.namespace, body, _request_timeout=self.timeout)
        except ApiException as error:
            LOG.warning("could not emit event %s: %s %s", reason, error.status, error.reason)

    def route(self) -> dict[str, Any]:
        """Return the live HTTPRoute."""
        return dict(
            self.call(
                f"get HTTPRoute {self.httproute}",
                self.custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                self.httproute,
            )
        )

    def set_weight(self, weight: int) -> None:
        """Patch the route's backend weights (retrying once on a conflicting concurrent edit)."""
        self.patch_rules(lambda rules: reweigh(rules, self.stable_service, self.canary_service, weight))
        self.event(
            "CanaryWeight",
            f"canary {self.canary_service} at {weight}%, stable {self.stable_service} at {100 - weight}%",
        )

    def set_mirror(self, on: bool) -> None:
        """Add (shadow phase) or remove the route's RequestMirror filter to the canary Service."""
        self.patch_rules(lambda rules: remirror(rules, self.canary_service, on))
        what = "mirrors every request to" if on else "no longer mirrors to"
        self.event("CanaryMirror", f"the route {what} canary {self.canary_service}")

    def route_mirror(self) -> bool:
        """Return whether the live route mirrors requests to the canary Service."""
        return any(
            is_mirror_to(item, self.canary_service)
            for rule in self.route()["spec"].get("rules", [])
            for item in rule.get("filters", [])
        )

    def canary_url(self) -> str:
        """Return the canary Service's in-cluster URL, on the port the route sends it traffic on."""
        ports = [
            ref.get("port", 80)
            for rule in self.route()["spec"].get("rules", [])
            for ref in rule.get("backendRefs", [])
            if ref.get("name") == self.canary_service
        ]
        return f"http://{self.canary_service}.{self.namespace}.svc:{ports[0] if ports else 80}"

    def patch_rules(self, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
        """Merge-patch the route's rules with `change` applied, at the resourceVersion read (one retry on 409)."""
        for attempt in range(2):
            route = self.route()
            rules = change(route["spec"]["rules"])
            patch = {
                "metadata": {"resourceVersion": route["metadata"]["resourceVersion"]},
                "spec": {"rules": rules},
            }
            try:
                self.call(
                    f"patch HTTPRoute {self.httproute}",
                    self.custom.patch_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    self.httproute,
                    patch,
                    passthrough=(409,),
                )
                return
            except ApiException as error:
                if attempt:
                    raise refusal(f"patch HTTPRoute {self.httproute}", error) from error

    def scale_canary(self, replicas: int) -> None:
        """Scale the canary Deployment."""
        self.call(
            f"patch Deployment {self.canary_deployment}/scale",
            self.apps.patch_namespaced_deployment_scale,
            self.canary_deployment,
            self.namespace,
            {"spec": {"replicas": replicas}},
        )

    def readiness(self, name: str) -> Readiness:
        """Read whether a Deployment's current generation is fully updated and available, or why it is stuck."""
        deployment = self.call(
            f"get Deployment {name}/status", self.apps.read_namespaced_deployment_status, name, self.namespace
        )
        status, wanted = deployment.status, deployment.spec.replicas or 0
        ready = (
            (status.observed_generation or 0) >= (deployment.metadata.generation or 0)
            and (status.updated_replicas or 0) >= wanted
            and (status.available_replicas or 0) >= wanted
            and (status.replicas or 0) == wanted
        )
        return Readiness(ready=ready, stuck=None if ready else stalled(deployment))

    def deployment(self, name: str) -> Any:
        """Return a Deployment as the client's model object."""
        return self.call(f"get Deployment {name}", self.apps.read_namespaced_deployment, name, self.namespace)

    def read_desired(self) -> Desired:
        """Return the model version (or alias) that Git put on the canary Deployment's serving container."""
        for container in self.deployment(self.canary_deployment).spec.template.spec.containers or []:
            env = {item.name: item.value for item in container.env or [] if item.value}
            if MODEL_VERSION_ENV in env or MODEL_ALIAS_ENV in env:
                return Desired(version=env.get(MODEL_VERSION_ENV), alias=env.get(MODEL_ALIAS_ENV))
        return Desired()

    def read_state(self) -> State | None:
        """Return the record from its ConfigMap, None when the controller has not created it yet."""
        try:
            found = self.call(
                f"get ConfigMap {self.state_configmap}",
                self.core.read_namespaced_config_map,
                self.state_configmap,
                self.namespace,
                passthrough=(404,),
            )
        except ApiException:
            return None
        meta = found.metadata
        return State.from_configmap(found.data, meta.annotations, meta.resource_version)

    def write_state(self, state: State, clear_retry: bool = False) -> State:
        """Create the record, or merge-patch it against the resourceVersion it was read at (409: StateConflict)."""
        metadata: dict[str, Any] = {"name": self.state_configmap, "namespace": self.namespace}
        try:
            if state.resource_version is None:
                metadata["labels"] = {"app.kubernetes.io/managed-by": COMPONENT}
                body = {"metadata": metadata, "data": state.data()}
                written = self.call(
                    f"create ConfigMap {self.state_configmap}",
                    self.core.create_namespaced_config_map,
                    self.namespace,
                    body,
                    passthrough=(409,),
                )
            else:
                metadata["resourceVersion"] = state.resource_version
                if clear_retry:
                    metadata["annotations"] = {RETRY_ANNOTATION: None}
                body = {"metadata": metadata, "data": state.data()}
                written = self.call(
                    f"patch ConfigMap {self.state_configmap}",
                    self.core.patch_namespaced_config_map,
                    self.state_configmap,
                    self.namespace,
                    body,
                    passthrough=(409,),
                )
        except ApiException as error:
            raise StateConflict(f"ConfigMap {self.state_configmap}: {error.reason}") from error
        retry = None if clear_retry else state.retry
        return replace(state, retry=retry, resource_version=written.metadata.resource_version)

    def served_annotation(self) -> str | None:
        """Return the version stamped on the stable's pod template by the last rollout to it."""
        annotations = self.deployment(self.stable_deployment).spec.template.metadata.annotations or {}
        return annotations.get(SERVED_ANNOTATION) or None

    def route_weight(self) -> int:
        """Return the canary backend's weight on the live route (0 when it has none)."""
        for rule in self.route()["spec"].get("rules", []):
            for ref in rule.get("backendRefs", []):
                if ref.get("name") == self.canary_service:
                    return int(ref.get("weight", 1))
        return 0

    def canary_replicas(self) -> int:
        """Return the canary Deployment's desired replicas."""
        return int(self.deployment(self.canary_deployment).spec.replicas or 0)

    def start_canary(self) -> None:
        """Scale the canary up when it is down; `canary_ready` says when its pods are there."""
        if self.canary_replicas() == 0:
            self.scale_canary(self.canary_pods)

    def canary_ready(self) -> Readiness:
        """Return whether the canary's pods are all up to date and available."""
        return self.readiness(self.canary_deployment)

    def stop_canary(self) -> None:
        """Scale the canary to 0 pods."""
        if self.canary_replicas() != 0:
            self.scale_canary(0)

    def serve_on_stable(self, version: str) -> None:
        """Stamp `version` on the stable's pod template: its pods then reload from the record.

        The stamp is the version, not a time: re-stamping the same version changes nothing, so a promotion
        resumed after a controller restart does not restart the stable twice. `stable_ready` says when the
        stable's new pods are all there.
        """
        patch = {"spec": {"template": {"metadata": {"annotations": {SERVED_ANNOTATION: version}}}}}
        self.call(
            f"patch Deployment {self.stable_deployment}",
            self.apps.patch_namespaced_deployment,
            self.stable_deployment,
            self.namespace,
            patch,
        )

    def stable_ready(self) -> Readiness:
        """Return whether the stable's pods are all up to date and available."""
        return self.readiness(self.stable_deployment)
