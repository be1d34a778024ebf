"""The signer's manifests (manifests/platform/signer): valid, restricted, scanned, and out of every pipeline's reach.

The signing key lives in namespace plinth-signing; Kubeflow Pipelines runs every step as `pipeline-runner` in
namespace kubeflow. Nothing plinth installs may let that account (or a group it belongs to) read a Secret there,
and no pod but the signer may reference the key Secret. On a cluster the same is one command (answers "no"):
  kubectl auth can-i get secret/plinth-signing-key -n plinth-signing \
    --as system:serviceaccount:kubeflow:pipeline-runner
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from k8s_tooling import (
    ROOT,
    load_documents,
    named,
    pod_specs,
    render,
    restricted_violations,
    run,
    tool,
    validate_object,
)
from test_checkov import scan

SIGNER = "platform/signer"
NAMESPACE = "plinth-signing"
KEY_SECRET = "plinth-signing-key"
# The account every KFP step runs as, and the groups Kubernetes puts it in.
RUNNER = ("kubeflow", "pipeline-runner")
RUNNER_GROUPS = {"system:serviceaccounts", "system:serviceaccounts:kubeflow", "system:authenticated"}
READS = {"get", "list", "watch", "*"}


def kustomize(target: str) -> list[dict[str, Any]]:
    result = run([tool("kubectl"), "kustomize", str(ROOT / "manifests" / target)])
    assert result.returncode == 0, result.stderr
    return load_documents(result.stdout)


def everything_plinth_installs() -> list[dict[str, Any]]:
    """The chart, every overlay, the platform add-ons, the signer and the public key for KFP, as rendered."""
    targets = [f"overlays/{path.name}" for path in sorted((ROOT / "manifests" / "overlays").iterdir())]
    objects = render("default")
    for target in [*targets, "platform", SIGNER, "platform/kubeflow"]:
        objects += kustomize(target)
    return objects


def names_the_runner(subject: dict[str, Any]) -> bool:
    if subject.get("kind") == "ServiceAccount":
        return (subject.get("namespace"), subject.get("name")) == RUNNER
    return subject.get("kind") == "Group" and subject.get("name") in RUNNER_GROUPS


def runner_secret_grants(objects: list[dict[str, Any]]) -> list[str]:
    """Return every binding that lets pipeline-runner read Secrets in the signer's namespace (empty when none)."""
    roles = {(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]): obj for obj in objects}
    found = []
    for binding in objects:
        if binding["kind"] == "RoleBinding" and binding["metadata"].get("namespace") != NAMESPACE:
            continue
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(names_the_runner(subject) for subject in binding.get("subjects", [])):
            continue
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        role = roles.get((ref["kind"], namespace, ref["name"]))
        rules = role.get("rules", []) if role else [{"resources": ["*"], "verbs": ["*"]}]  # unknown: assume the worst
        for rule in rules:
            if {"secrets", "*"} & set(rule.get("resources", [])) and READS & set(rule.get("verbs", [])):
                found.append(f"{binding['kind']}/{binding['metadata']['name']} -> {ref['kind']}/{ref['name']}")
    return found


def key_references(spec: dict[str, Any]) -> bool:
    """Return whether a pod spec mounts or reads the key Secret in any way."""
    if any(volume.get("secret", {}).get("secretName") == KEY_SECRET for volume in spec.get("volumes", [])):
        return True
    for container in spec.get("initContainers", []) + spec["containers"]:
        if any(source.get("secretRef", {}).get("name") == KEY_SECRET for source in container.get("envFrom", [])):
            return True
        for entry in container.get("env", []):
            if entry.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == KEY_SECRET:
                return True
    return False


def test_the_signer_renders_valid_restricted_objects_in_its_own_namespace() -> None:
    objects = kustomize(SIGNER)
    assert {obj["kind"] for obj in objects} >= {"Namespace", "ServiceAccount", "Deployment", "Service", "NetworkPolicy"}
    for obj in objects:
        validate_object(obj)
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]
    [(name, spec)] = pod_specs(objects)
    assert restricted_violations(name, spec) == []
    assert spec["automountServiceAccountToken"] is False
    assert named(objects, "ServiceAccount", "plinth-signer")["automountServiceAccountToken"] is False
    assert named(objects, "Namespace", NAMESPACE)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "restricted"
    )
    container = spec["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_only_kubeflow_pods_reach_the_signer() -> None:
    policy = named(kustomize(SIGNER), "NetworkPolicy", "plinth-signer")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    [rule] = policy["spec"]["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}}}]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]


def test_the_pipeline_runner_cannot_read_the_signers_secrets() -> None:
    objects = everything_plinth_installs()
    assert runner_secret_grants(objects) == []
    signer_bindings = [
        obj["metadata"]["name"]
        for obj in objects
        if obj["kind"] == "RoleBinding" and obj["metadata"].get("namespace") == NAMESPACE
    ]
    assert signer_bindings == [], "nothing in the signer's namespace is bound to any account"
    holders = [name for name, spec in pod_specs(objects) if key_references(spec)]
    assert holders == ["plinth-signer"], "only the signer mounts the key"


def test_the_rbac_check_catches_a_binding_that_opens_the_key() -> None:
    """A RoleBinding in plinth-signing that gives pipeline-runner a Role reading Secrets: what the check is for."""
    role = {
        "kind": "Role",
        "metadata": {"name": "reader", "namespace": NAMESPACE},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
    }
    binding = {
        "kind": "RoleBinding",
        "metadata": {"name": "oops", "namespace": NAMESPACE},
        "subjects": [{"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kubeflow"}],
        "roleRef": {"kind": "Role", "name": "reader", "apiGroup": "rbac.authorization.k8s.io"},
    }
    assert runner_secret_grants([role, binding]) == ["RoleBinding/oops -> Role/reader"]
    group = {**binding, "subjects": [{"kind": "Group", "name": "system:serviceaccounts"}]}
    assert runner_secret_grants([role, group]) == ["RoleBinding/oops -> Role/reader"]


def test_checkov_finds_no_failures_in_the_signer(tmp_path: Path) -> None:
    result = run([tool("kubectl"), "kustomize", str(ROOT / "manifests" / SIGNER)])
    assert result.returncode == 0, result.stderr
    (tmp_path / "signer.yaml").write_text(result.stdout)
    report = scan(tmp_path)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 20
    failures = [
        f"{check['check_id']} {check['resource']}: {check['check_name']}"
        for check in report["results"]["failed_checks"]
    ]
    assert failures == []
