"""NetworkPolicies of the chart, the overlays and the platform add-ons: every rule names its peers.

No rule is open to all (a rule without `from`/`to`, an empty namespace selector, a `/0` CIDR), the API server
the controller calls is a value without a default, and MLflow answers only the namespaces that use it.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
from k8s_tooling import ROOT, VALUE_SETS, load_documents, named, render, render_with, run, tool

MANIFESTS = ROOT / "manifests"
KUSTOMIZE_TARGETS = [f"overlays/{path.name}" for path in sorted((MANIFESTS / "overlays").iterdir())] + [
    "platform",
    "platform/dask",
]


def kustomize(target: str) -> list[dict[str, Any]]:
    result = run([tool("kubectl"), "kustomize", str(MANIFESTS / target)])
    assert result.returncode == 0, result.stderr
    return load_documents(result.stdout)


def policies(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == "NetworkPolicy"]


def open_peers(policy: dict[str, Any]) -> list[str]:
    """Return what in one NetworkPolicy admits everybody (empty when every rule names its peers)."""
    name, spec, problems = policy["metadata"]["name"], policy["spec"], []
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}, f"{name}: both directions are policed"
    for direction, key in (("ingress", "from"), ("egress", "to")):
        for index, rule in enumerate(spec.get(direction, [])):
            peers = rule.get(key) or []
            if not peers:
                problems.append(f"{name} {direction}[{index}]: no `{key}`, open to all")
            for peer in peers:
                for selector in ("namespaceSelector", "podSelector"):
                    if selector in peer and not peer[selector]:
                        problems.append(f"{name} {direction}[{index}]: empty {selector}")
                if "ipBlock" in peer and ipaddress.ip_network(peer["ipBlock"]["cidr"]).prefixlen == 0:
                    problems.append(f"{name} {direction}[{index}]: {peer['ipBlock']['cidr']}")
    return problems


def test_the_checker_catches_open_rules() -> None:
    policy = {
        "metadata": {"name": "bad"},
        "spec": {
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"port": 80}]}, {"from": [{"namespaceSelector": {}}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}, {"to": [{"ipBlock": {"cidr": "::/0"}}]}],
        },
    }
    assert len(open_peers(policy)) == 4


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_chart_policy_rule_names_its_peers(value_set: str) -> None:
    found = policies(render(value_set))
    assert found
    for policy in found:
        assert open_peers(policy) == []


@pytest.mark.parametrize("target", KUSTOMIZE_TARGETS)
def test_every_manifest_policy_rule_names_its_peers(target: str) -> None:
    found = policies(kustomize(target))
    assert len(found) >= 2
    for policy in found:
        assert open_peers(policy) == []


def strings(node: Any) -> list[str]:
    """Every string value in a parsed YAML document (comments are not values)."""
    if isinstance(node, dict):
        return [text for value in node.values() for text in strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in strings(value)]
    return [node] if isinstance(node, str) else []


def test_no_open_cidr_anywhere_in_the_manifests_or_chart_values() -> None:
    files = [*MANIFESTS.rglob("*.yaml"), ROOT / "helm" / "plinth-serving" / "values.yaml"]
    assert len(files) > 10
    for path in files:
        values = [text for document in load_documents(path.read_text()) for text in strings(document)]
        assert not [text for text in values if text.strip() in {"0.0.0.0/0", "::/0"}], path
    assert strings({"a": [{"cidr": "0.0.0.0/0"}]}) == ["0.0.0.0/0"]


def test_the_api_server_is_required_with_one_clear_message() -> None:
    result = render_with(cluster=False)
    assert result.returncode != 0
    assert "networkPolicy.apiServerCidrs is required" in result.stderr
    assert "kubectl get endpoints kubernetes -n default" in result.stderr
    for off in ("rolloutController.enabled=false", "networkPolicy.enabled=false"):
        assert render_with("--set", off, cluster=False).returncode == 0, off


def test_the_serving_pods_reach_the_payload_archive_only_where_they_are_told() -> None:
    refused = render_with("--set", "feedback.archive.url=s3://archive/plinth")
    assert refused.returncode != 0
    assert "feedback.archive.peers is required" in refused.stderr
    minio = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}},
        "podSelector": {"matchLabels": {"app": "minio"}},
    }
    result = render_with(
        "--set",
        "feedback.archive.url=s3://archive/plinth",
        "--set-json",
        f"feedback.archive.peers={json.dumps([minio])}",
        "--set",
        "feedback.archive.port=9000",
    )
    assert result.returncode == 0, result.stderr
    policy = named(load_documents(result.stdout), "NetworkPolicy", "release-plinth-serving-serving")
    assert {"to": [minio], "ports": [{"port": 9000, "protocol": "TCP"}]} in policy["spec"]["egress"]
    without = named(render("default"), "NetworkPolicy", "release-plinth-serving-serving")
    assert all(rule.get("ports") != [{"port": 9000, "protocol": "TCP"}] for rule in without["spec"]["egress"])


def test_the_controller_reaches_the_api_server_it_is_given_and_no_other() -> None:
    result = render_with(
        "--set", "networkPolicy.apiServerCidrs={10.0.0.2/32,10.0.0.3/32}", "--set", "networkPolicy.apiServerPorts={443}"
    )
    assert result.returncode == 0, result.stderr
    policy = named(load_documents(result.stdout), "NetworkPolicy", "release-plinth-serving-rollout")
    blocks = [rule for rule in policy["spec"]["egress"] if "ipBlock" in rule["to"][0]]
    assert blocks == [
        {
            "to": [{"ipBlock": {"cidr": "10.0.0.2/32"}}, {"ipBlock": {"cidr": "10.0.0.3/32"}}],
            "ports": [{"port": 443, "protocol": "TCP"}],
        }
    ]


def test_the_base_sets_a_narrow_api_server() -> None:
    policy = named(kustomize("overlays/prod"), "NetworkPolicy", "plinth-classifier-rollout")
    cidrs = [peer["ipBlock"]["cidr"] for rule in policy["spec"]["egress"] for peer in rule["to"] if "ipBlock" in peer]
    assert cidrs
    assert all(ipaddress.ip_network(cidr).prefixlen >= 24 for cidr in cidrs), cidrs


def test_dns_is_a_value_with_kube_dns_defaults() -> None:
    default = named(render("default"), "NetworkPolicy", "release-plinth-serving-serving")["spec"]["egress"][0]
    assert default["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert default["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    result = render_with(
        "--set",
        "networkPolicy.dnsNamespaceLabels.kubernetes\\.io/metadata\\.name=dns",
        "--set",
        "networkPolicy.dnsPodLabels.app=coredns",
        "--set",
        "networkPolicy.dnsPorts={5353}",
    )
    assert result.returncode == 0, result.stderr
    for policy in policies(load_documents(result.stdout)):
        dns = policy["spec"]["egress"][0]
        assert dns["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "dns"
        assert dns["to"][0]["podSelector"] == {"matchLabels": {"app": "coredns", "k8s-app": "kube-dns"}}
        assert [port["port"] for port in dns["ports"]] == [5353, 5353]


def test_the_helm_test_pod_may_call_only_dns_and_the_stable_pods() -> None:
    objects = render("default")
    policy = named(objects, "NetworkPolicy", "release-plinth-serving-test")
    pod = named(objects, "Pod", "release-plinth-serving-test")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert "ingress" not in policy["spec"]
    stable = named(objects, "Deployment", "release-plinth-serving-stable")["spec"]["template"]["metadata"]["labels"]
    target = policy["spec"]["egress"][1]
    assert target["to"][0]["podSelector"]["matchLabels"].items() <= stable.items()
    assert target["ports"] == [{"port": 3000, "protocol": "TCP"}]


def test_mlflow_answers_only_plinth_and_the_pipeline_namespace() -> None:
    platform = kustomize("platform")
    policy = named(platform, "NetworkPolicy", "mlflow")
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "plinth"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "plinth"}},
        },
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}}},
    ]
    # The serving pods and the controller that call MLflow are the ones that rule admits.
    for obj in kustomize("overlays/staging"):
        if obj["kind"] == "Deployment":
            assert obj["metadata"]["namespace"] == "plinth"
            assert obj["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "plinth"
    mlflow = named(platform, "Deployment", "mlflow")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= mlflow.items()
