"""The Go `SetDefaults_*` of the built-in kinds an overlay carries besides Deployments (those are `defaults.py`).

What the API server fills in on every write, so the objects stored (and what `kubectl diff` and admission see)
are the ones a cluster holds: a Namespace's finalizer, phase and `kubernetes.io/metadata.name` label; a
Service's type, session affinity, IP family, traffic policy, port protocol and targetPort, and its cluster IP
(allocated once from 10.96.0.0/16, kept across updates that leave it out); a NetworkPolicy's policyTypes and
port protocols; the pod templates of StatefulSets, DaemonSets and Jobs; an HPA's minReplicas and CPU target;
a Secret's type; the matchPolicy and selectors of admission policies and bindings; RBAC subjects' apiGroup.
"""

from __future__ import annotations

import zlib
from typing import Any

from tests.apiserver.defaults import pod_spec


def namespace(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    meta = obj.setdefault("metadata", {})
    meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj["status"] = (old or {}).get("status") or {"phase": "Active"}


def cluster_ip(obj: dict[str, Any]) -> str:
    """A stable address of 10.96.0.0/16 for a Service (from its namespace and name)."""
    meta = obj["metadata"]
    found = zlib.crc32(f"{meta.get('namespace', '')}/{meta.get('name', '')}".encode()) % 65000 + 10
    return f"10.96.{found // 256}.{found % 256}"


def service(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    if spec["type"] == "ExternalName":
        return
    was = (old or {}).get("spec") or {}
    spec.setdefault("clusterIP", was.get("clusterIP") or cluster_ip(obj))
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    obj.setdefault("status", {"loadBalancer": {}})


def network_policy(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("policyTypes", ["Ingress", *(["Egress"] if "egress" in spec else [])])
    for rule in (spec.get("ingress") or []) + (spec.get("egress") or []):
        for port in rule.get("ports") or []:
            port.setdefault("protocol", "TCP")


def stateful_set(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))


def template_only(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """DaemonSets and Jobs: the pod template's defaults."""
    pod_spec(obj.setdefault("spec", {}).setdefault("template", {}).setdefault("spec", {}))


def autoscaler(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("minReplicas", 1)
    cpu = {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}
    spec.setdefault("metrics", [{"type": "Resource", "resource": cpu}])


def secret(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    obj.setdefault("type", "Opaque")


def matching(where: dict[str, Any] | None) -> None:
    if where is not None:
        where.setdefault("matchPolicy", "Equivalent")
        where.setdefault("namespaceSelector", {})
        where.setdefault("objectSelector", {})


def admission_policy(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("failurePolicy", "Fail")
    matching(spec.get("matchConstraints"))


def policy_binding(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    matching(obj.setdefault("spec", {}).get("matchResources"))


def role_binding(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    for subject in obj.get("subjects") or []:
        if subject.get("kind") in ("User", "Group"):
            subject.setdefault("apiGroup", "rbac.authorization.k8s.io")


DEFAULTS = {
    "Namespace": namespace,
    "Service": service,
    "NetworkPolicy": network_policy,
    "StatefulSet": stateful_set,
    "DaemonSet": template_only,
    "Job": template_only,
    "HorizontalPodAutoscaler": autoscaler,
    "Secret": secret,
    "ValidatingAdmissionPolicy": admission_policy,
    "ValidatingAdmissionPolicyBinding": policy_binding,
    "RoleBinding": role_binding,
    "ClusterRoleBinding": role_binding,
}


def default(kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Default one built-in object in place (`old`: what is stored, on an update)."""
    if kind in DEFAULTS:
        DEFAULTS[kind](obj, old)
