"""A stateful in-memory stand-in for the few API objects the controller touches, under the real client.

It replaces only the kubernetes client's urllib3 pool manager: request building, serialization, content
types and error mapping are the real client's. It keeps an HTTPRoute, the stable and canary Deployments
(spec, scale, status), ConfigMaps and Events, with resourceVersions and 409s as the API server has them, and
plays the Deployment controller and the kubelet: a Deployment whose pod template changes, or which scales up
from zero, "starts pods" that resolve their model version from their env exactly as the chart wires it
(a literal value, or a configMapKeyRef into the controller's record, else the alias).
"""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any
from urllib.parse import urlparse

from kubernetes.client import ApiClient, Configuration
from urllib3 import HTTPResponse

NS = "models"
ROUTE = "clf"
STABLE, CANARY = "clf-stable", "clf-canary"
STATE = "clf-rollout-state"
ROUTE_PATH = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/{ROUTE}"


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Apply a JSON merge patch (RFC 7386) in place: maps merge, null deletes, anything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def serving_container(env: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a pod template with one `serving` container carrying `env`."""
    return {"metadata": {"labels": {"app": "clf"}}, "spec": {"containers": [{"name": "serving", "env": env}]}}


def stable_env() -> list[dict[str, Any]]:
    """The stable's env as the chart renders it with the controller on: the record's version, else the alias."""
    ref = {"configMapKeyRef": {"name": STATE, "key": "stableVersion", "optional": True}}
    return [
        {"name": "PLINTH_MODEL_NAME", "value": "clf"},
        {"name": "PLINTH_MODEL_ALIAS", "value": "champion"},
        {"name": "PLINTH_MODEL_VERSION", "valueFrom": ref},
    ]


def canary_env(desired: str | None) -> list[dict[str, Any]]:
    """The canary's env as an overlay renders it: Git's desired version (or only the alias)."""
    env = [{"name": "PLINTH_MODEL_NAME", "value": "clf"}, {"name": "PLINTH_MODEL_ALIAS", "value": "challenger"}]
    return env + ([{"name": "PLINTH_MODEL_VERSION", "value": desired}] if desired else [])


class FakeCluster:
    """The API objects in memory, every request recorded as (method, path, body, content type)."""

    def __init__(self, desired: str | None = "1", manifests: list[dict[str, Any]] | None = None) -> None:
        """Start with the hand-made objects above, or with those of rendered manifests (`kubectl kustomize`)."""
        self.versions = itertools.count(100)
        self.requests: list[tuple[str, str, dict[str, Any], str]] = []
        self.events: list[dict[str, Any]] = []
        self.configmaps: dict[str, dict[str, Any]] = {}
        # Route and record patches to refuse with 409 (as if someone else edited the object just before).
        self.route_conflicts = 0
        self.state_conflicts = 0
        self.route = self.stamp(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": ROUTE, "namespace": NS},
                "spec": {
                    "rules": [
                        {
                            "backendRefs": [
                                {"name": STABLE, "port": 80, "weight": 100},
                                {"name": CANARY, "port": 80, "weight": 0},
                            ]
                        }
                    ]
                },
            }
        )
        self.deployments = {
            STABLE: self.new_deployment(STABLE, 2, stable_env()),
            CANARY: self.new_deployment(CANARY, 1, canary_env(desired)),
        }
        self.namespace, self.stable, self.canary, self.state_name = NS, STABLE, CANARY, STATE
        if manifests:
            self.load(manifests)
        # What each Deployment's pods loaded when they started (None: no pods).
        self.serving: dict[str, str | None] = {name: self.resolve(name) for name in self.deployments}
        self.rollouts = dict.fromkeys(self.deployments, 0)

    def load(self, manifests: list[dict[str, Any]]) -> None:
        """Take the route, the serving Deployments and the record's name from rendered manifests, as applied."""
        route = next(obj for obj in manifests if obj["kind"] == "HTTPRoute")
        self.route = self.stamp(copy.deepcopy(route))
        self.namespace = route["metadata"]["namespace"]
        self.deployments = {}
        for obj in manifests:
            if obj["kind"] != "Deployment":
                continue
            command = obj["spec"]["template"]["spec"]["containers"][0].get("command", [])
            if "--state-configmap" in command:
                self.state_name = command[command.index("--state-configmap") + 1]
            track = obj["metadata"].get("labels", {}).get("plinth.dev/track")
            if track is None:
                continue
            deployment = copy.deepcopy(obj)
            deployment["spec"].setdefault("replicas", 1)  # the API server's default for an omitted field
            deployment["metadata"]["generation"] = 1
            self.settle(deployment)
            self.deployments[obj["metadata"]["name"]] = self.stamp(deployment)
            setattr(self, track, obj["metadata"]["name"])

    def apply(self, manifests: list[dict[str, Any]]) -> None:
        """`kubectl apply -k` of a re-rendered overlay: what it sets wins, what it omits stays as it is live.

        The route's rules are the manifest's again (weights included); a Deployment keeps the replicas the
        controller scaled it to when the manifest omits them, and the pod-template annotations another
        manager wrote (the controller's served-version stamp); a changed template rolls the Deployment.
        """
        route = next(obj for obj in manifests if obj["kind"] == "HTTPRoute")
        self.route["spec"] = copy.deepcopy(route["spec"])
        self.stamp(self.route)
        for obj in manifests:
            name = obj["metadata"]["name"]
            if obj["kind"] != "Deployment" or name not in self.deployments:
                continue
            live = self.deployments[name]
            template = copy.deepcopy(obj["spec"]["template"])
            kept = live["spec"]["template"]["metadata"].get("annotations", {})
            template["metadata"]["annotations"] = {**kept, **template["metadata"].get("annotations", {})}
            if "replicas" in obj["spec"]:
                live["spec"]["replicas"] = obj["spec"]["replicas"]
            if template != live["spec"]["template"]:
                live["spec"]["template"] = template
                self.rolled(name)

    def stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Give an object a fresh resourceVersion, as every write does."""
        obj["metadata"]["resourceVersion"] = str(next(self.versions))
        return obj

    def new_deployment(self, name: str, replicas: int, env: list[dict[str, Any]]) -> dict[str, Any]:
        """Return a rolled-out Deployment."""
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS, "generation": 1},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": serving_container(env),
            },
        }
        self.settle(deployment)
        return self.stamp(deployment)

    @staticmethod
    def settle(deployment: dict[str, Any]) -> None:
        """Play the Deployment controller: the current generation is fully rolled out and available."""
        replicas = deployment["spec"]["replicas"]
        deployment["status"] = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
            "readyReplicas": replicas,
        }

    def resolve(self, name: str) -> str | None:
        """Return the model a new pod of `name` loads: its PLINTH_MODEL_VERSION, else `alias:<alias>`."""
        deployment = self.deployments[name]
        if not deployment["spec"]["replicas"]:
            return None
        container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "serving")
        values = {item["name"]: item for item in container["env"]}
        version = values.get("PLINTH_MODEL_VERSION", {})
        if "value" in version:
            return str(version["value"])
        ref = version.get("valueFrom", {}).get("configMapKeyRef")
        if ref:
            found = self.configmaps.get(ref["name"], {}).get("data", {}).get(ref["key"])
            if found:
                return str(found)
        return f"alias:{values['PLINTH_MODEL_ALIAS']['value']}"

    def restart_pods(self, name: str) -> None:
        """Evict every pod of `name`: the replacements resolve their model again."""
        self.serving[name] = self.resolve(name)

    def set_desired(self, version: str | None) -> None:
        """Apply an overlay whose desired version is `version` (what `kubectl apply -k` / a GitOps agent does)."""
        deployment = self.deployments[self.canary]
        container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "serving")
        env = [item for item in container["env"] if item["name"] != "PLINTH_MODEL_VERSION"]
        container["env"] = env + ([{"name": "PLINTH_MODEL_VERSION", "value": version}] if version else [])
        self.rolled(self.canary)

    def rolled(self, name: str) -> None:
        """The pod template changed: new generation, new pods."""
        deployment = self.deployments[name]
        deployment["metadata"]["generation"] += 1
        self.settle(deployment)
        self.stamp(deployment)
        self.rollouts[name] += 1
        self.restart_pods(name)

    def set_weights(self, stable: int, canary: int) -> None:
        """Set the route's weights behind the controller's back (a re-apply, or a crash before its patch)."""
        for ref in self.route["spec"]["rules"][0]["backendRefs"]:
            ref["weight"] = stable if ref["name"] == self.stable else canary
        self.stamp(self.route)

    def weights(self) -> dict[str, int]:
        """Return the route's backend weights by Service name (the Services are named after the Deployments)."""
        return {ref["name"]: ref["weight"] for ref in self.route["spec"]["rules"][0]["backendRefs"]}

    def mirrored(self) -> list[str]:
        """Return the Services the route's RequestMirror filters copy requests to (the gateway's shadow traffic)."""
        return [
            item["requestMirror"]["backendRef"]["name"]
            for rule in self.route["spec"]["rules"]
            for item in rule.get("filters", [])
            if item.get("type") == "RequestMirror"
        ]

    def remove_filters(self) -> None:
        """Drop every filter of the route's rules behind the controller's back (a re-apply of the Git route)."""
        for rule in self.route["spec"]["rules"]:
            rule.pop("filters", None)
        self.stamp(self.route)

    def state(self) -> dict[str, Any]:
        """Return the controller's record: `stableVersion` and the decoded `status` (empty before it exists)."""
        found = self.configmaps.get(self.state_name)
        if found is None:
            return {}
        data = found.get("data", {})
        return {"stableVersion": data.get("stableVersion"), **json.loads(data.get("status") or "{}")}

    def annotate_state(self, key: str, value: str) -> None:
        """`kubectl annotate configmap <record> key=value --overwrite`."""
        merge(self.configmaps[self.state_name], {"metadata": {"annotations": {key: value}}})
        self.stamp(self.configmaps[self.state_name])

    def reasons(self) -> list[str]:
        """Return the reasons of the Events emitted so far."""
        return [event["reason"] for event in self.events]

    def api(self) -> ApiClient:
        """Return a real API client whose transport is this fake."""
        client = ApiClient(Configuration(host="https://k8s.invalid"))
        client.rest_client.pool_manager = self
        return client

    def request(self, method: str, url: str, body: Any = None, headers: Any = None, **_: Any) -> HTTPResponse:
        """Answer one HTTP request of the client."""
        path = urlparse(url).path
        payload: dict[str, Any] = json.loads(body) if body else {}
        self.requests.append((method, path, payload, (headers or {}).get("Content-Type", "")))
        route = self.route["metadata"]
        deployments = f"/apis/apps/v1/namespaces/{self.namespace}/deployments/"
        configmaps = f"/api/v1/namespaces/{self.namespace}/configmaps"
        if path == f"/apis/gateway.networking.k8s.io/v1/namespaces/{route['namespace']}/httproutes/{route['name']}":
            return self.route_call(method, payload)
        if path.startswith(deployments):
            return self.deployment_call(method, path[len(deployments) :], payload)
        if path.startswith(configmaps):
            return self.configmap_call(method, path[len(configmaps) :].strip("/"), payload)
        if path == f"/api/v1/namespaces/{self.namespace}/events" and method == "POST":
            self.events.append(payload)
            return self.answer(
                201, {**payload, "metadata": {"name": f"e{len(self.events)}", "namespace": self.namespace}}
            )
        return self.answer(404, {"kind": "Status", "reason": "NotFound", "message": path})

    def conflict_with(self, current: dict[str, Any], patch: dict[str, Any]) -> bool:
        """Whether a patch carries a resourceVersion precondition that no longer holds."""
        wanted = patch.get("metadata", {}).get("resourceVersion")
        return wanted is not None and wanted != current["metadata"]["resourceVersion"]

    def route_call(self, method: str, patch: dict[str, Any]) -> HTTPResponse:
        """GET or merge-PATCH the route (409 on a stale resourceVersion or a scripted concurrent edit)."""
        if method == "PATCH":
            if self.route_conflicts:
                self.route_conflicts -= 1
                self.stamp(self.route)
                return self.answer(409, {"kind": "Status", "reason": "Conflict", "code": 409})
            if self.conflict_with(self.route, patch):
                return self.answer(409, {"kind": "Status", "reason": "Conflict", "code": 409})
            merge(self.route, {key: value for key, value in patch.items() if key != "metadata"})
            self.stamp(self.route)
        return self.answer(200, self.route)

    def deployment_call(self, method: str, rest: str, patch: dict[str, Any]) -> HTTPResponse:
        """GET a Deployment (or its status/scale), PATCH its template or its scale."""
        name, _, sub = rest.partition("/")
        deployment = self.deployments[name]
        if method == "PATCH" and sub == "scale":
            replicas = patch["spec"]["replicas"]
            was = deployment["spec"]["replicas"]
            deployment["spec"]["replicas"] = replicas
            self.settle(deployment)
            self.stamp(deployment)
            if not was or not replicas:
                self.restart_pods(name)
            return self.answer(200, {"kind": "Scale", "spec": {"replicas": replicas}, "status": {"replicas": replicas}})
        if method == "PATCH":
            before = copy.deepcopy(deployment["spec"]["template"])
            merge(deployment, patch)
            if deployment["spec"]["template"] != before:
                self.rolled(name)
        return self.answer(200, deployment)

    def configmap_call(self, method: str, name: str, body: dict[str, Any]) -> HTTPResponse:
        """GET, POST (create) or merge-PATCH a ConfigMap, with AlreadyExists and resourceVersion conflicts."""
        if method == "POST":
            name = body["metadata"]["name"]
            if name in self.configmaps:
                return self.answer(409, {"kind": "Status", "reason": "AlreadyExists", "code": 409})
            self.configmaps[name] = self.stamp({"apiVersion": "v1", "kind": "ConfigMap", **copy.deepcopy(body)})
            return self.answer(201, self.configmaps[name])
        found = self.configmaps.get(name)
        if found is None:
            return self.answer(404, {"kind": "Status", "reason": "NotFound", "code": 404})
        if method == "PATCH":
            if self.state_conflicts:
                self.state_conflicts -= 1
                self.stamp(found)
            if self.conflict_with(found, body):
                return self.answer(409, {"kind": "Status", "reason": "Conflict", "code": 409})
            body = copy.deepcopy(body)
            body.get("metadata", {}).pop("resourceVersion", None)
            merge(found, body)
            self.stamp(found)
        return self.answer(200, found)

    @staticmethod
    def answer(status: int, data: dict[str, Any]) -> HTTPResponse:
        """Return an HTTP response with a JSON body."""
        return HTTPResponse(
            body=json.dumps(data).encode(),
            status=status,
            headers={"Content-Type": "application/json"},
            preload_content=True,
        )
