"""The controller's cluster for its tests: a façade over the strict API server stand-in (tests/apiserver).

Under the real kubernetes client it keeps an HTTPRoute, the stable and canary Deployments (spec, scale,
status), ConfigMaps and Events, as the API server keeps them: CRD and core defaults applied and every write
validated, patches by Content-Type, resourceVersions and 409s, and the chart's ValidatingAdmissionPolicy in
front of every write when the manifests carry it. Behind it the stand-in plays the Deployment controller and
the kubelet: a Deployment whose pod template changes, or which scales up from zero, "starts pods" that resolve
their model version from their env exactly as the chart wires it (a literal value, or a configMapKeyRef into
the controller's record, else the alias). The façade's own methods are what people and GitOps agents do
behind the controller's back; they write through the same server as those users.
"""

from __future__ import annotations

import copy
import importlib
import json
import sys
from functools import cache
from typing import Any

from kubernetes.client import ApiClient
from urllib3 import HTTPResponse

from tests.apiserver.admission import install
from tests.apiserver.resources import CONFIGMAP, DEPLOYMENT, EVENT, HTTPROUTE, Resource
from tests.apiserver.server import ApiServer
from tests.apiserver.transport import Transport, api_client

NS = "models"
ROUTE = "clf"
STABLE, CANARY = "clf-stable", "clf-canary"
STATE = "clf-rollout-state"
ROUTE_PATH = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/{ROUTE}"
# Who writes besides the controller: a GitOps agent applying Git, and a person with kubectl.
AGENT = "system:serviceaccount:flux-system:kustomize-controller"
ADMIN = "kubernetes-admin"
IMAGE = "ghcr.io/plinth/serving:1.0.0"


def serving_container(env: list[dict[str, Any]], app: str = "clf") -> dict[str, Any]:
    """Return a pod template with one `serving` container carrying `env`."""
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "serving", "image": IMAGE, "env": env}]},
    }


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


def hand_made(desired: str | None) -> list[dict[str, Any]]:
    """The route and the two Deployments of the unit tests, as valid objects."""
    route = {
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
    return [route, deployment(STABLE, 2, stable_env()), deployment(CANARY, 1, canary_env(desired))]


def deployment(name: str, replicas: int, env: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {"plinth.dev/track": name.rsplit("-", 1)[-1]}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": serving_container(env, name),
        },
    }


def controller_user(manifests: list[dict[str, Any]]) -> str | None:
    """The controller's identity as the manifests run it: its Deployment's service account."""
    for obj in manifests:
        if obj["kind"] == "Deployment" and "--state-configmap" in str(obj["spec"]["template"]["spec"]["containers"]):
            account = obj["spec"]["template"]["spec"].get("serviceAccountName", "default")
            return f"system:serviceaccount:{obj['metadata'].get('namespace', 'default')}:{account}"
    return None


class FakeCluster:
    """The API objects behind a strict stand-in, every request recorded as (method, path, body, content type)."""

    def __init__(
        self, desired: str | None = "1", manifests: list[dict[str, Any]] | None = None, user: str | None = None
    ) -> None:
        """Start with the hand-made objects above, or with those of rendered manifests (`kubectl kustomize`).

        Manifests holding a ValidatingAdmissionPolicy and its binding install them: every write is reviewed.
        `user` is the controller's identity (default: the service account its Deployment in `manifests` runs as).
        """
        self.namespace, self.stable, self.canary, self.state_name = NS, STABLE, CANARY, STATE
        self.route_name = ROUTE
        found = controller_user(manifests or [])
        self.server = ApiServer(user or found or f"system:serviceaccount:{NS}:clf-rollout")
        # Route and record patches to refuse with 409 (as if someone else edited the object just before).
        self.route_conflicts = 0
        self.state_conflicts = 0
        self.manifests = copy.deepcopy(manifests or [])
        self.load(manifests or hand_made(desired))
        self.server.policies = install(manifests or [])

    @classmethod
    def from_chart(cls, value_set: str = "default") -> FakeCluster:
        """A cluster holding the chart's objects as `helm template` renders them (policy installed)."""
        return cls(manifests=[copy.deepcopy(o) for o in chart_objects(value_set)])

    @property
    def requests(self) -> list[tuple[str, str, Any, str]]:
        return self.server.requests

    @property
    def route(self) -> dict[str, Any]:
        return self.server.store.get(HTTPROUTE, self.namespace, self.route_name)

    @property
    def deployments(self) -> dict[str, dict[str, Any]]:
        return self.server.store.bucket(DEPLOYMENT, self.namespace)

    @property
    def configmaps(self) -> dict[str, dict[str, Any]]:
        return self.server.store.bucket(CONFIGMAP, self.namespace)

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self.server.store.bucket(EVENT, self.namespace).values())

    @property
    def serving(self) -> dict[str, str | None]:
        """What each Deployment's pods loaded when they started (None: no pods)."""
        return self.server.workloads.serving

    @property
    def rollouts(self) -> dict[str, int]:
        return self.server.workloads.rollouts

    def load(self, manifests: list[dict[str, Any]]) -> None:
        """Apply the route, the serving Deployments and ConfigMaps of rendered manifests, as a GitOps agent would."""
        route = next(obj for obj in manifests if obj["kind"] == "HTTPRoute")
        self.namespace = route["metadata"].get("namespace", NS)
        self.route_name = route["metadata"]["name"]
        self.server.store.add_namespace(self.namespace)
        for obj in manifests:
            if obj["kind"] == "Deployment":
                command = obj["spec"]["template"]["spec"]["containers"][0].get("command", [])
                if "--state-configmap" in command:
                    self.state_name = command[command.index("--state-configmap") + 1]
                track = obj["metadata"].get("labels", {}).get("plinth.dev/track")
                if track in ("stable", "canary"):
                    setattr(self, track, obj["metadata"]["name"])
        self.apply(manifests, first=True)

    def apply(self, manifests: list[dict[str, Any]], first: bool = False) -> None:
        """`kubectl apply --server-side --force-conflicts` of a re-rendered overlay, as Flux applies it.

        What the manifest sets wins; what it omits and another manager owns stays (the replicas the controller
        scaled to, the controller's served-version stamp); a changed pod template rolls the Deployment.
        """
        for obj in manifests:
            name = obj["metadata"]["name"]
            kind = {"HTTPRoute": HTTPROUTE, "Deployment": DEPLOYMENT, "ConfigMap": CONFIGMAP}.get(obj["kind"])
            if kind is None or (kind is DEPLOYMENT and name not in (self.stable, self.canary)):
                continue
            if not first and kind is not HTTPROUTE and name not in self.server.store.bucket(kind, self.namespace):
                continue
            body = copy.deepcopy(obj)
            body["metadata"].pop("namespace", None)
            self.call(
                "PATCH",
                kind,
                name,
                body,
                "application/apply-patch+yaml",
                AGENT,
                fieldManager="kustomize-controller",
                force="true",
            )

    def call(
        self, method: str, resource: Resource, name: str, body: Any, content_type: str, user: str, **query: str
    ) -> dict[str, Any]:
        """One request as `user` (a person or an agent); a refusal fails the test that made it."""
        group = f"apis/{resource.group}" if resource.group else "api"
        path = f"/{group}/{resource.version}/namespaces/{self.namespace}/{resource.plural}/{name}"
        headers = {"Content-Type": content_type, "User-Agent": "kubectl/v1.33.0"}
        status, answer = self.server.handle(method, path, query, headers, json.dumps(body).encode(), user, record=False)
        assert status < 300, answer
        return answer

    def resolve(self, name: str) -> str | None:
        """Return the model a new pod of `name` loads: its PLINTH_MODEL_VERSION, else `alias:<alias>`."""
        return self.server.workloads.resolve(self.deployments[name])

    def restart_pods(self, name: str) -> None:
        """Evict every pod of `name`: the replacements resolve their model again."""
        self.server.workloads.restart_pods(self.deployments[name])
        self.server.workloads.settle(self.deployments[name])

    def set_desired(self, version: str | None) -> None:
        """Apply an overlay whose desired version is `version` (what `kubectl apply -k` / a GitOps agent does)."""
        entry: dict[str, Any] = {"name": "PLINTH_MODEL_VERSION", "value": version}
        if version is None:
            entry = {"name": "PLINTH_MODEL_VERSION", "$patch": "delete"}
        body = {"spec": {"template": {"spec": {"containers": [{"name": "serving", "env": [entry]}]}}}}
        self.call("PATCH", DEPLOYMENT, self.canary, body, "application/strategic-merge-patch+json", AGENT)

    def set_weights(self, stable: int, canary: int) -> None:
        """Set the route's weights behind the controller's back (a re-apply, or a crash before its patch)."""
        rules = copy.deepcopy(self.route["spec"]["rules"])
        for ref in (ref for rule in rules for ref in rule.get("backendRefs", [])):
            ref["weight"] = stable if ref["name"] == self.stable else canary
        self.call(
            "PATCH", HTTPROUTE, self.route_name, {"spec": {"rules": rules}}, "application/merge-patch+json", ADMIN
        )

    def weights(self) -> dict[str, int]:
        """Return the route's backend weights by Service name (the Services are named after the Deployments).

        A route of several rules (the chart's: the prediction API, the Open Inference Protocol) must carry the
        same weights on each, or a client's share of the canary would depend on which door it uses.
        """
        per_rule = [
            {ref["name"]: ref["weight"] for ref in rule["backendRefs"]}
            for rule in self.route["spec"]["rules"]
            if rule.get("backendRefs")
        ]
        assert all(weights == per_rule[0] for weights in per_rule), f"rules weighed apart: {per_rule}"
        return per_rule[0]

    def mirrored(self) -> list[str]:
        """Return the Services the route's RequestMirror filters copy requests to (the gateway's shadow traffic).

        Every rule that routes to the backends must mirror alike (the chart's route has a rule per door).
        """
        per_rule = [
            [
                item["requestMirror"]["backendRef"]["name"]
                for item in rule.get("filters", [])
                if item.get("type") == "RequestMirror"
            ]
            for rule in self.route["spec"]["rules"]
            if rule.get("backendRefs")
        ]
        assert all(mirrors == per_rule[0] for mirrors in per_rule), f"rules mirrored apart: {per_rule}"
        return per_rule[0]

    def remove_filters(self) -> None:
        """Drop every filter of the route's rules behind the controller's back (a re-apply of the Git route)."""
        rules = [{k: v for k, v in rule.items() if k != "filters"} for rule in self.route["spec"]["rules"]]
        self.call(
            "PATCH", HTTPROUTE, self.route_name, {"spec": {"rules": rules}}, "application/merge-patch+json", ADMIN
        )

    def state(self) -> dict[str, Any]:
        """Return the controller's record: `stableVersion` and the decoded `status` (empty before it exists)."""
        found = self.configmaps.get(self.state_name)
        if found is None:
            return {}
        data = found.get("data", {})
        return {"stableVersion": data.get("stableVersion"), **json.loads(data.get("status") or "{}")}

    def annotate_state(self, key: str, value: str) -> None:
        """`kubectl annotate configmap <record> key=value --overwrite`."""
        body = {"metadata": {"annotations": {key: value}}}
        self.call("PATCH", CONFIGMAP, self.state_name, body, "application/merge-patch+json", ADMIN)

    def reasons(self) -> list[str]:
        """Return the reasons of the Events emitted so far."""
        return [event["reason"] for event in self.events]

    def api(self) -> ApiClient:
        """Return a real API client whose transport is this fake (as the controller)."""
        client = api_client(self.server)
        client.rest_client.pool_manager = self
        return client

    def request(self, method: str, url: str, body: Any = None, headers: Any = None, **kwargs: Any) -> HTTPResponse:
        """Answer one HTTP request of the client, after the scripted concurrent edits of the route or record."""
        if method == "PATCH" and f"/httproutes/{self.route_name}" in url and self.route_conflicts:
            self.route_conflicts -= 1
            self.server.store.touch(HTTPROUTE, self.namespace, self.route_name)
        if method == "PATCH" and f"/configmaps/{self.state_name}" in url and self.state_conflicts:
            self.state_conflicts -= 1
            self.server.store.touch(CONFIGMAP, self.namespace, self.state_name)
        return Transport(self.server).request(method, url, body=body, headers=headers, **kwargs)


@cache
def chart_objects(value_set: str = "default") -> tuple[dict[str, Any], ...]:
    """The chart rendered by helm with one of tests/k8s's value sets (rendered once per process)."""
    tooling = sys.modules.get("k8s_tooling") or importlib.import_module("tests.k8s.k8s_tooling")
    return tuple(tooling.render(value_set))


def before_the_mirror_fix(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chart's objects with the admission policy as it was before it allowed the CRD's backendRef defaults.

    The bug a kinder stand-in hid: the API server defaults the mirror filter's backendRef (`group: ""`, `kind:
    Service`) before admission, and this policy then denied the controller's shadow-phase patch.
    """
    fixed = {
        '(!has(f.requestMirror.backendRef.group) || f.requestMirror.backendRef.group == "")': (
            "!has(f.requestMirror.backendRef.group)"
        ),
        '(!has(f.requestMirror.backendRef.kind) || f.requestMirror.backendRef.kind == "Service")': (
            "!has(f.requestMirror.backendRef.kind)"
        ),
    }
    old = copy.deepcopy(objects)
    policy = next(obj for obj in old if obj["kind"] == "ValidatingAdmissionPolicy")
    for validation in policy["spec"]["validations"]:
        for new, was in fixed.items():
            validation["expression"] = validation["expression"].replace(new, was)
    assert "!has(f.requestMirror.backendRef.group) &&" in str(policy), "the fix is no longer written this way"
    return old
