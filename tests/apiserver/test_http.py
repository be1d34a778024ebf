"""The stand-in over HTTPS as the real kubectl sees it: discovery, identities, dry runs, field validation, 404s."""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest
import yaml

from tests.apiserver.fixtures import Standin
from tests.apiserver.http import AGENT
from tests.apiserver.resources import CONFIGMAP, NAMESPACE
from tests.apiserver.tls import self_signed


def configmap(name: str = "settings", **data: str) -> str:
    found = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}}
    return yaml.safe_dump({**found, "data": data or {"a": "1"}})


def raw(standin: Standin, path: str, token: str | None = "admin") -> tuple[int, dict[str, Any]]:
    """GET `path` as urllib would, trusting the stand-in's certificate."""
    context = ssl.create_default_context(cadata=self_signed()[0].decode())
    request = urllib.request.Request(standin.http.url + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_discovery_lists_every_served_kind_and_kubectl_maps_them(standin: Standin) -> None:
    listed = standin.kubectl("api-resources", "-o", "name")
    assert listed.returncode == 0, listed.stderr
    names = set(listed.stdout.split())
    for wanted in ("deployments.apps", "httproutes.gateway.networking.k8s.io", "servicemonitors.monitoring.coreos.com"):
        assert wanted in names
    assert {
        "namespaces",
        "networkpolicies.networking.k8s.io",
        "validatingadmissionpolicies.admissionregistration.k8s.io",
    } <= names
    status, groups = raw(standin, "/apis")
    assert status == 200
    assert groups["kind"] == "APIGroupList"
    status, apps = raw(standin, "/apis/apps/v1")
    by_name = {r["name"]: r for r in apps["resources"]}
    assert by_name["deployments"]["namespaced"] is True
    assert "deployments/scale" in by_name
    _, core = raw(standin, "/api/v1")
    assert next(r for r in core["resources"] if r["name"] == "namespaces")["namespaced"] is False


def test_an_unknown_kind_is_answered_as_the_api_server_answers_it(standin: Standin) -> None:
    got = standin.kubectl("get", "widgets")
    assert got.returncode == 1
    assert 'the server doesn\'t have a resource type "widgets"' in got.stderr
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "default"}}
    applied = standin.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(widget))
    assert applied.returncode == 1
    assert 'no matches for kind "Widget" in version "example.com/v1"' in applied.stderr
    status, body = raw(standin, "/apis/example.com/v1/namespaces/default/widgets")
    assert (status, body["reason"], body["message"]) == (
        404,
        "NotFound",
        "the server could not find the requested resource",
    )


def test_each_token_acts_as_its_user_and_no_token_is_unauthorized(standin: Standin) -> None:
    standin.api.deny("create", "configmaps")
    refused = standin.kubectl("create", "-f", "-", context="agent", stdin=configmap())
    assert f'User "{AGENT}" cannot create resource "configmaps"' in refused.stderr
    refused = standin.kubectl("create", "-f", "-", stdin=configmap())
    assert 'User "kubernetes-admin" cannot create resource "configmaps"' in refused.stderr
    assert raw(standin, "/api/v1/namespaces/default/configmaps", token=None)[0] == 401
    assert raw(standin, "/api/v1/namespaces/default/configmaps", token="guessed")[0] == 401
    standin.api.clear_denials()
    created = standin.kubectl("create", "-f", "-", context="agent", stdin=configmap())
    assert created.returncode == 0, created.stderr
    stored = standin.api.store.get(CONFIGMAP, "default", "settings")
    assert [e["manager"] for e in stored["metadata"]["managedFields"]] == ["kubectl-create"]


def test_a_server_dry_run_checks_everything_and_stores_nothing(standin: Standin) -> None:
    dry = standin.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", stdin=configmap())
    assert dry.returncode == 0, dry.stderr
    assert "(server dry run)" in dry.stdout
    assert standin.api.store.find(CONFIGMAP, "default", "settings") is None
    bad = standin.kubectl("apply", "--dry-run=server", "-f", "-", stdin=configmap("Not_A_Name"))
    assert bad.returncode == 1
    assert "a lowercase RFC 1123 subdomain" in bad.stderr
    assert standin.kubectl("apply", "--server-side", "-f", "-", stdin=configmap()).returncode == 0
    version = standin.api.store.get(CONFIGMAP, "default", "settings")["metadata"]["resourceVersion"]
    diff = standin.kubectl("diff", "--server-side", "-f", "-", stdin=configmap(a="2"))
    assert diff.returncode == 1, diff.stderr
    assert '+  a: "2"' in diff.stdout
    stored = standin.api.store.get(CONFIGMAP, "default", "settings")
    assert (stored["data"], stored["metadata"]["resourceVersion"]) == ({"a": "1"}, version)
    deleted = standin.kubectl("delete", "configmap", "settings", "--dry-run=server")
    assert deleted.returncode == 0
    assert standin.api.store.find(CONFIGMAP, "default", "settings") is not None


def test_strict_field_validation_refuses_an_undeclared_field_warn_drops_it(standin: Standin) -> None:
    odd = yaml.safe_load(configmap())
    odd["spec"] = {"replicas": 1}
    strict = standin.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(odd))
    assert strict.returncode == 1
    assert 'strict decoding error: unknown field "spec"' in strict.stderr
    warned = standin.kubectl("apply", "--validate=warn", "-f", "-", stdin=yaml.safe_dump(odd))
    assert warned.returncode == 0, warned.stderr
    assert 'unknown field "spec"' in warned.stderr
    assert "spec" not in standin.api.store.get(CONFIGMAP, "default", "settings")


def test_objects_land_defaulted_and_a_namespace_is_usable_once_created(standin: Standin) -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "team"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]},
    }
    missing = standin.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(service))
    assert missing.returncode == 1
    assert 'namespaces "team" not found' in missing.stderr
    both = yaml.safe_dump_all([namespace, service])
    assert standin.kubectl("apply", "--server-side", "-f", "-", stdin=both).returncode == 0
    got = json.loads(standin.kubectl("get", "service", "web", "-n", "team", "-o", "json").stdout)
    assert got["spec"]["type"] == "ClusterIP"
    assert got["spec"]["clusterIP"].startswith("10.96.")
    assert got["spec"]["ports"] == [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}]
    labels = standin.api.store.get(NAMESPACE, "", "team")["metadata"]["labels"]
    assert labels == {"kubernetes.io/metadata.name": "team"}
    assert standin.api.store.namespaces["team"] == labels


def test_unreachable_drops_connections_unanswered_and_a_stopped_server_refuses_them(standin: Standin) -> None:
    standin.api.unreachable(1)
    with pytest.raises(http.client.RemoteDisconnected, match="closed connection without response"):
        raw(standin, "/api/v1/namespaces/default/configmaps")
    assert raw(standin, "/api/v1/namespaces/default/configmaps")[0] == 200, "only the next request is dropped"
    standin.http.stop()
    got = standin.kubectl("get", "configmaps")
    assert got.returncode == 1
    assert "connection refused" in got.stderr
