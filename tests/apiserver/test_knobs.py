"""Every fault knob, the Deployment play's readiness through status, and admission in front of every write."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client import AppsV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError

from tests.apiserver import ApiServer
from tests.apiserver.admission import AdmissionPolicy
from tests.apiserver.test_writes import GW, NS, deployment, route


@pytest.fixture
def server() -> ApiServer:
    server = ApiServer()
    server.store.add_namespace(NS)
    AppsV1Api(server.api()).create_namespaced_deployment(NS, deployment())
    return server


def status(apps: AppsV1Api) -> Any:
    return apps.read_namespaced_deployment_status("app", NS).status


@pytest.mark.parametrize("code", [403, 404, 422, 500, 503])
def test_a_denied_write_answers_the_chosen_status_n_times(server: ApiServer, code: int) -> None:
    apps = AppsV1Api(server.api())
    server.deny("patch", "deployments", "app", "scale", code=code, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as error:
            apps.patch_namespaced_deployment_scale("app", NS, {"spec": {"replicas": 2}})
        assert error.value.status == code
        assert json.loads(error.value.body)["kind"] == "Status"
    assert apps.patch_namespaced_deployment_scale("app", NS, {"spec": {"replicas": 2}}).spec.replicas == 2


def test_a_forever_denial_words_403_as_the_authorizer_until_cleared(server: ApiServer) -> None:
    apps = AppsV1Api(server.api())
    server.deny("patch", "deployments", code=403)
    for _ in range(3):
        with pytest.raises(ApiException) as error:
            apps.patch_namespaced_deployment("app", NS, {"metadata": {"labels": {"a": "b"}}})
    assert json.loads(error.value.body)["message"] == (
        f'deployments.apps "app" is forbidden: User "{server.user}" cannot patch resource "deployments" '
        f'in API group "apps" in the namespace "{NS}"'
    )
    server.clear_denials()
    assert apps.patch_namespaced_deployment("app", NS, {"metadata": {"labels": {"a": "b"}}}).metadata.labels == {
        "a": "b"
    }


def test_a_deleted_object_is_404(server: ApiServer) -> None:
    server.remove("deployments", NS, "app")
    with pytest.raises(ApiException) as error:
        AppsV1Api(server.api()).read_namespaced_deployment("app", NS)
    assert error.value.status == 404


def test_an_unreachable_api_server_raises_what_urllib3_raises(server: ApiServer) -> None:
    core = CoreV1Api(server.api())
    server.unreachable(2)
    for _ in range(2):
        with pytest.raises(MaxRetryError, match="Connection refused"):
            core.read_namespaced_config_map("x", NS)
    with pytest.raises(ApiException) as error:
        core.read_namespaced_config_map("x", NS)
    assert error.value.status == 404


def test_a_deployment_rolls_out_within_the_write_by_default(server: ApiServer) -> None:
    apps = AppsV1Api(server.api())
    apps.patch_namespaced_deployment_scale("app", NS, {"spec": {"replicas": 3}})
    found = status(apps)
    assert (found.observed_generation, found.updated_replicas, found.available_replicas) == (2, 3, 3)
    assert {c.type: c.reason for c in found.conditions} == {
        "Available": "MinimumReplicasAvailable",
        "Progressing": "NewReplicaSetAvailable",
    }


def test_pods_that_never_become_ready_exceed_the_progress_deadline(server: ApiServer) -> None:
    apps = AppsV1Api(server.api())
    server.never_ready(NS, "app")
    apps.patch_namespaced_deployment("app", NS, {"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}})
    assert not status(apps).available_replicas
    assert {c.type: c.reason for c in status(apps).conditions}["Progressing"] == "ReplicaSetUpdated"
    server.advance(601)
    progressing = next(c for c in status(apps).conditions if c.type == "Progressing")
    assert (progressing.status, progressing.reason) == ("False", "ProgressDeadlineExceeded")
    server.ready_now(NS, "app")
    assert status(apps).available_replicas == 1


def test_a_slow_rollout_gains_a_pod_every_n_reads_or_when_told(server: ApiServer) -> None:
    apps = AppsV1Api(server.api())
    server.roll_slowly(NS, "app", reads_per_pod=2)
    apps.patch_namespaced_deployment_scale("app", NS, {"spec": {"replicas": 0}})
    apps.patch_namespaced_deployment_scale("app", NS, {"spec": {"replicas": 3}})
    seen = [status(apps).available_replicas or 0 for _ in range(4)]
    assert seen == [0, 1, 1, 2]
    server.advance_rollout(NS, "app", pods=1)
    found = status(apps)
    assert (found.available_replicas, found.replicas) == (3, 3)


def test_pods_resolve_their_model_from_a_literal_a_configmap_or_the_alias(server: ApiServer) -> None:
    env = [
        {"name": "PLINTH_MODEL_ALIAS", "value": "champion"},
        {
            "name": "PLINTH_MODEL_VERSION",
            "valueFrom": {"configMapKeyRef": {"name": "rec", "key": "v", "optional": True}},
        },
    ]
    body = deployment("svc")
    body["spec"]["template"]["spec"]["containers"][0].update(name="serving", env=env)
    apps = AppsV1Api(server.api())
    apps.create_namespaced_deployment(NS, body)
    assert server.workloads.serving["svc"] == "alias:champion"
    CoreV1Api(server.api()).create_namespaced_config_map(NS, {"metadata": {"name": "rec"}, "data": {"v": "7"}})
    apps.patch_namespaced_deployment("svc", NS, {"spec": {"template": {"metadata": {"annotations": {"r": "1"}}}}})
    assert server.workloads.serving["svc"] == "7"
    assert server.workloads.rollouts["svc"] == 1


def policy(reason: str | None) -> AdmissionPolicy:
    validation: dict[str, Any] = {"expression": "object.spec.rules.all(r, !has(r.filters))", "message": "no filters"}
    if reason:
        validation["reason"] = reason
    rules = [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["httproutes"]}]
    spec = {"failurePolicy": "Fail", "matchConstraints": {"resourceRules": rules}, "validations": [validation]}
    spec["matchConditions"] = [{"name": "me", "expression": 'request.userInfo.username == "ci"'}]
    binding = {"policyName": "p", "validationActions": ["Deny"], "matchResources": {"namespaceSelector": {}}}
    return AdmissionPolicy({"metadata": {"name": "p"}, "spec": spec}, {"metadata": {"name": "b"}, "spec": binding})


@pytest.mark.parametrize(("reason", "code"), [(None, 422), ("Forbidden", 403)])
def test_a_policy_denial_is_422_invalid_unless_the_validation_says_forbidden(
    server: ApiServer, reason: str | None, code: int
) -> None:
    server.policies = [policy(reason)]
    with pytest.raises(ApiException) as error:
        CustomObjectsApi(server.api("ci")).create_namespaced_custom_object(*GW, route())
    body = json.loads(error.value.body)
    assert (error.value.status, body["reason"]) == (code, reason or "Invalid")
    assert body["message"] == (
        "httproutes.gateway.networking.k8s.io \"web\" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' "
        "denied request: no filters"
    )
    created = CustomObjectsApi(server.api("someone-else")).create_namespaced_custom_object(*GW, route())
    assert created["metadata"]["name"] == "web", "matchConditions leave other users alone"


def test_a_scale_write_is_reviewed_on_the_scale_object(server: ApiServer) -> None:
    """As the API server does: a policy on deployments/scale sees the autoscaling/v1 Scale, not the Deployment."""
    expression = (
        'object.kind == "Scale" && oldObject.kind == "Scale" && request.kind.kind == "Scale" && '
        'request.resource.resource == "deployments" && !has(object.spec.template) && object.spec.replicas <= 2'
    )
    rules = [{"apiGroups": ["apps"], "apiVersions": ["*"], "operations": ["*"], "resources": ["deployments/scale"]}]
    spec = {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": rules},
        "validations": [{"expression": expression, "message": "a Scale of at most 2", "reason": "Forbidden"}],
    }
    binding = {"policyName": "p", "validationActions": ["Deny"], "matchResources": {"namespaceSelector": {}}}
    server.policies = [
        AdmissionPolicy({"metadata": {"name": "p"}, "spec": spec}, {"metadata": {"name": "b"}, "spec": binding})
    ]
    apps = AppsV1Api(server.api())
    apps.patch_namespaced_deployment_scale("app", NS, {"spec": {"replicas": 2}})
    with pytest.raises(ApiException) as error:
        apps.patch_namespaced_deployment_scale("app", NS, {"spec": {"replicas": 3}})
    assert error.value.status == 403
    assert "a Scale of at most 2" in json.loads(error.value.body)["message"]
    assert apps.read_namespaced_deployment("app", NS).spec.replicas == 2
