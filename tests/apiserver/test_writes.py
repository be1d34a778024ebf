"""The stand-in against the API server's documented behaviour: defaults, validation, versions, sizes, 404s."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubernetes.client import AppsV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from tests.apiserver import ApiServer
from tests.apiserver.resources import CONFIGMAP

NS = "team"
GW = ("gateway.networking.k8s.io", "v1", NS, "httproutes")


def route() -> dict[str, Any]:
    backends = [{"name": "svc-a", "port": 80, "weight": 90}, {"name": "svc-b", "port": 80, "weight": 10}]
    mirror = {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "svc-b", "port": 80}}}
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": backends, "filters": [mirror]}]},
    }


def deployment(name: str = "app", image: str = "ghcr.io/x/app:1.2") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": image,
                            "ports": [{"containerPort": 8080}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        }
                    ]
                },
            },
        },
    }


@pytest.fixture
def server() -> ApiServer:
    server = ApiServer()
    server.store.add_namespace(NS)
    return server


def status_of(error: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.value.body)
    return body


def test_crd_defaults_fill_every_backend_ref_the_mirror_included(server: ApiServer) -> None:
    stored = CustomObjectsApi(server.api()).create_namespaced_custom_object(*GW, route())
    rule = stored["spec"]["rules"][0]
    assert all(ref["group"] == "" and ref["kind"] == "Service" for ref in rule["backendRefs"])
    assert rule["filters"][0]["requestMirror"]["backendRef"] == {
        "name": "svc-b",
        "port": 80,
        "group": "",
        "kind": "Service",
    }
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert stored["spec"]["parentRefs"][0] == {"name": "gw", "group": "gateway.networking.k8s.io", "kind": "Gateway"}
    assert stored["metadata"]["generation"] == 1
    assert stored["metadata"]["uid"]
    assert stored["metadata"]["creationTimestamp"] == "2025-01-01T00:00:00Z"


def test_core_defaults_of_a_deployment_and_its_pod_template(server: ApiServer) -> None:
    stored = AppsV1Api(server.api()).create_namespaced_deployment(NS, deployment()).to_dict()
    spec = stored["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rolling_update": {"max_surge": "25%", "max_unavailable": "25%"},
    }
    assert (spec["revision_history_limit"], spec["progress_deadline_seconds"]) == (10, 600)
    pod = spec["template"]["spec"]
    assert (pod["restart_policy"], pod["dns_policy"], pod["scheduler_name"]) == (
        "Always",
        "ClusterFirst",
        "default-scheduler",
    )
    assert pod["termination_grace_period_seconds"] == 30
    container = pod["containers"][0]
    assert container["image_pull_policy"] == "IfNotPresent"
    assert container["termination_message_path"] == "/dev/termination-log"
    assert container["termination_message_policy"] == "File"
    assert container["ports"][0]["protocol"] == "TCP"
    latest = AppsV1Api(server.api()).create_namespaced_deployment(NS, deployment("b", "ghcr.io/x/app"))
    assert latest.spec.template.spec.containers[0].image_pull_policy == "Always"


def test_invalid_writes_answer_422_naming_the_field(server: ApiServer) -> None:
    apps = AppsV1Api(server.api())
    bad = deployment()
    del bad["spec"]["template"]["spec"]["containers"][0]["image"]
    with pytest.raises(ApiException) as error:
        apps.create_namespaced_deployment(NS, bad)
    status = status_of(error)
    assert (error.value.status, status["kind"], status["status"], status["reason"]) == (
        422,
        "Status",
        "Failure",
        "Invalid",
    )
    assert (
        status["message"] == 'Deployment.apps "app" is invalid: spec.template.spec.containers[0].image: Required value'
    )
    assert status["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.template.spec.containers[0].image"}
    ]
    wrong = route()
    wrong["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    with pytest.raises(ApiException) as error:
        CustomObjectsApi(server.api()).create_namespaced_custom_object(*GW, wrong)
    assert status_of(error)["details"]["causes"][0]["field"] == "spec.rules[0].backendRefs[0].weight"
    unknown = route()
    unknown["spec"]["rules"][0]["filters"][0]["requestMirror"]["percent"] = 50  # experimental channel only
    with pytest.raises(ApiException) as error:
        CustomObjectsApi(server.api()).create_namespaced_custom_object(*GW, unknown)
    assert "requestMirror.percent" in status_of(error)["message"]


def test_resource_versions_are_global_and_a_stale_one_is_a_conflict(server: ApiServer) -> None:
    core = CoreV1Api(server.api())
    first = core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}, "data": {"k": "1"}})
    second = core.create_namespaced_config_map(NS, {"metadata": {"name": "b"}})
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    assert first.metadata.generation is None  # ConfigMaps keep none
    body = {"metadata": {"resourceVersion": first.metadata.resource_version}, "data": {"k": "2"}}
    core.patch_namespaced_config_map("a", NS, body)
    with pytest.raises(ApiException) as error:
        core.patch_namespaced_config_map("a", NS, body)
    assert error.value.status == 409
    assert status_of(error)["message"].startswith('Operation cannot be fulfilled on configmaps "a"')
    stale = core.read_namespaced_config_map("a", NS)
    server.touch("configmaps", NS, "a")
    with pytest.raises(ApiException) as error:
        core.replace_namespaced_config_map("a", NS, stale)
    assert error.value.status == 409
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}})
    assert (error.value.status, status_of(error)["reason"]) == (409, "AlreadyExists")


def test_generation_moves_with_the_spec_not_with_status_or_labels(server: ApiServer) -> None:
    custom = CustomObjectsApi(server.api())
    custom.create_namespaced_custom_object(*GW, route())
    labelled = custom.patch_namespaced_custom_object(*GW, "web", {"metadata": {"labels": {"a": "b"}}})
    assert labelled["metadata"]["generation"] == 1
    status = custom.patch_namespaced_custom_object_status(*GW, "web", {"status": {"parents": []}})
    assert status["metadata"]["generation"] == 1
    rules = copy.deepcopy(labelled["spec"]["rules"])
    rules[0]["backendRefs"][0]["weight"] = 50
    assert custom.patch_namespaced_custom_object(*GW, "web", {"spec": {"rules": rules}})["metadata"]["generation"] == 2
    apps = AppsV1Api(server.api())
    apps.create_namespaced_deployment(NS, deployment())
    assert apps.patch_namespaced_deployment_scale("app", NS, {"spec": {"replicas": 3}}).spec.replicas == 3
    assert apps.read_namespaced_deployment("app", NS).metadata.generation == 2


def test_missing_objects_and_namespaces_are_404_with_the_real_status(server: ApiServer) -> None:
    core = CoreV1Api(server.api())
    with pytest.raises(ApiException) as error:
        core.read_namespaced_config_map("nope", NS)
    assert status_of(error)["message"] == 'configmaps "nope" not found'
    assert status_of(error)["details"] == {"name": "nope", "kind": "configmaps"}
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map("elsewhere", {"metadata": {"name": "a"}})
    assert (error.value.status, status_of(error)["message"]) == (404, 'namespaces "elsewhere" not found')


def test_sizes_a_configmap_over_1_mib_is_invalid_a_body_over_3_mib_too_large(server: ApiServer) -> None:
    core = CoreV1Api(server.api())
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map(NS, {"metadata": {"name": "big"}, "data": {"k": "x" * (1024 * 1024)}})
    assert error.value.status == 422
    assert "Too long: must have at most 1048576 bytes" in status_of(error)["message"]
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map(NS, {"metadata": {"name": "huge"}, "data": {"k": "x" * (3 * 1024 * 1024)}})
    assert (error.value.status, status_of(error)["reason"]) == (413, "RequestEntityTooLarge")
    assert server.store.bucket(CONFIGMAP, NS) == {}
