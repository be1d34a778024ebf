"""The cluster edge against the real kubernetes client, with a fake HTTP transport underneath it.

The fake replaces only the client's urllib3 pool manager: request building, serialization, content types
and error mapping are the real client's. It serves one HTTPRoute and two Deployments from memory.
"""

import json
from urllib.parse import urlparse

import pytest
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException
from urllib3 import HTTPResponse

from serving.rollout.edges.kube import RESTART_ANNOTATION, ClusterEdge, RouteError, reweigh

NS = "models"
ROUTE_PATH = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/clf"


def route() -> dict:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "clf", "namespace": NS, "resourceVersion": "7"},
        "spec": {
            "rules": [
                {
                    "backendRefs": [
                        {"name": "clf-stable", "port": 3000, "weight": 100},
                        {"name": "clf-canary", "port": 3000, "weight": 0},
                    ]
                }
            ]
        },
    }


def deployment(name: str, replicas: int = 1) -> dict:
    return {
        "metadata": {"name": name, "namespace": NS, "generation": 2},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": []}},
        },
        "status": {
            "observedGeneration": 2,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
        },
    }


class FakeApiServer:
    """Answers the few calls the edge makes and records every request."""

    def __init__(self, conflicts: int = 0) -> None:
        self.route = route()
        self.deployments = {"clf-stable": deployment("clf-stable"), "clf-canary": deployment("clf-canary", 0)}
        self.requests: list[tuple[str, str, dict, str]] = []
        self.conflicts = conflicts

    def request(self, method, url, body=None, headers=None, **_):
        path = urlparse(url).path
        payload: dict = json.loads(body) if body else {}
        self.requests.append((method, path, payload, (headers or {}).get("Content-Type", "")))
        if path == ROUTE_PATH and method == "GET":
            return self.answer(200, self.route)
        if path == ROUTE_PATH and method == "PATCH":
            if self.conflicts:
                self.conflicts -= 1
                self.route["metadata"]["resourceVersion"] = "8"
                return self.answer(409, {"kind": "Status", "reason": "Conflict"})
            self.route["spec"] = payload["spec"]
            return self.answer(200, self.route)
        if path == f"/api/v1/namespaces/{NS}/events" and method == "POST":
            return self.answer(201, {**payload, "metadata": {"name": "clf.1", "namespace": NS}})
        name = path.split("/deployments/")[1].split("/")[0]
        found = self.deployments[name]
        if path.endswith("/scale") and method == "PATCH":
            replicas = payload["spec"]["replicas"]
            found["spec"]["replicas"] = replicas
            found["status"].update(replicas=replicas, updatedReplicas=replicas, availableReplicas=replicas)
            return self.answer(200, {"spec": {"replicas": replicas}, "status": {"replicas": replicas}})
        if method == "PATCH":
            found["spec"]["template"]["metadata"].setdefault("annotations", {}).update(
                payload["spec"]["template"]["metadata"]["annotations"]
            )
        return self.answer(200, found)

    @staticmethod
    def answer(status: int, data: dict) -> HTTPResponse:
        return HTTPResponse(
            body=json.dumps(data).encode(),
            status=status,
            headers={"Content-Type": "application/json"},
            preload_content=True,
        )


def edge_for(server: FakeApiServer) -> ClusterEdge:
    api = ApiClient(Configuration(host="https://k8s.invalid"))
    api.rest_client.pool_manager = server
    return ClusterEdge(
        api, NS, "clf", "clf-stable", "clf-canary", "clf-canary", "clf-stable", ready_timeout=5, poll=0.01
    )


def weights(server: FakeApiServer) -> dict[str, int]:
    return {ref["name"]: ref["weight"] for ref in server.route["spec"]["rules"][0]["backendRefs"]}


def test_set_weight_merge_patches_the_route_with_its_resource_version_and_emits_an_event():
    server = FakeApiServer()
    edge_for(server).set_weight(25)
    assert weights(server) == {"clf-stable": 75, "clf-canary": 25}
    patch = next(r for r in server.requests if r[0] == "PATCH")
    assert patch[3] == "application/merge-patch+json"
    assert patch[2]["metadata"]["resourceVersion"] == "7"
    event = next(r for r in server.requests if r[1].endswith("/events"))
    assert event[2]["involvedObject"]["kind"] == "HTTPRoute"
    assert event[2]["reason"] == "CanaryWeight"
    assert "at 25%" in event[2]["message"]


def test_a_conflicting_edit_is_retried_on_the_fresh_route():
    server = FakeApiServer(conflicts=1)
    edge_for(server).set_weight(50)
    assert weights(server) == {"clf-stable": 50, "clf-canary": 50}
    patches = [r for r in server.requests if r[0] == "PATCH"]
    assert [p[2]["metadata"]["resourceVersion"] for p in patches] == ["7", "8"]


def test_repeated_conflicts_surface_as_an_error():
    server = FakeApiServer(conflicts=2)
    with pytest.raises(ApiException) as error:
        edge_for(server).set_weight(50)
    assert error.value.status == 409


def test_prepare_scales_the_canary_up_at_weight_zero():
    server = FakeApiServer()
    edge_for(server).prepare()
    assert server.deployments["clf-canary"]["spec"]["replicas"] == 1
    assert weights(server)["clf-canary"] == 0


def test_rollback_zeroes_the_weight_and_scales_the_canary_down():
    server = FakeApiServer()
    edge = edge_for(server)
    edge.prepare()
    edge.set_weight(50)
    edge.rollback()
    assert weights(server) == {"clf-stable": 100, "clf-canary": 0}
    assert server.deployments["clf-canary"]["spec"]["replicas"] == 0
    reasons = [r[2]["reason"] for r in server.requests if r[1].endswith("/events")]
    assert reasons[-1] == "RolledBack"


def test_promote_restarts_the_stable_before_taking_the_canary_out():
    server = FakeApiServer()
    edge = edge_for(server)
    edge.set_weight(100)
    edge.promote()
    annotations = server.deployments["clf-stable"]["spec"]["template"]["metadata"]["annotations"]
    assert RESTART_ANNOTATION in annotations
    calls = [(m, p) for m, p, _, _ in server.requests if m == "PATCH"]
    restart = calls.index(("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/clf-stable"))
    assert calls[restart + 1] == ("PATCH", ROUTE_PATH)
    assert weights(server) == {"clf-stable": 100, "clf-canary": 0}
    assert server.deployments["clf-canary"]["spec"]["replicas"] == 0


def test_a_route_without_the_canary_backend_is_refused():
    with pytest.raises(RouteError, match="clf-canary"):
        reweigh([{"backendRefs": [{"name": "clf-stable"}]}], "clf-stable", "clf-canary", 10)
