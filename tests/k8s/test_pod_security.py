"""Our own checks over every rendered pod template: Pod Security Standard "restricted", probes, resources, PDBs."""

from __future__ import annotations

from typing import Any

import pytest
from k8s_tooling import VALUE_SETS, named, pod_specs, render

# Volume types the "restricted" profile allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}


def restricted_violations(name: str, spec: dict[str, Any]) -> list[str]:
    """Return what in one pod spec breaks the "restricted" Pod Security Standard (empty when it complies)."""
    problems = []
    pod_context = spec.get("securityContext", {})
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"{name}: volume {volume['name']} of type {kinds - RESTRICTED_VOLUMES}")
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(f"{name}: {flag}")
    for container in spec.get("initContainers", []) + spec["containers"]:
        where = f"{name}/{container['name']}"
        context = container.get("securityContext", {})
        merged = {**pod_context, **context}
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if merged.get("runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot is not true")
        if merged.get("runAsUser", None) == 0:
            problems.append(f"{where}: runAsUser 0")
        if context.get("privileged"):
            problems.append(f"{where}: privileged")
        if merged.get("seccompProfile", {}).get("type") not in {"RuntimeDefault", "Localhost"}:
            problems.append(f"{where}: seccompProfile is not RuntimeDefault or Localhost")
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{where}: capabilities do not drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}: adds capabilities {capabilities['add']}")
        for port in container.get("ports", []):
            if "hostPort" in port:
                problems.append(f"{where}: hostPort")
    return problems


def test_the_checker_catches_a_violating_pod() -> None:
    bad = {
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "securityContext": {"runAsUser": 0, "capabilities": {"add": ["SYS_ADMIN"]}}}],
    }
    problems = restricted_violations("bad", bad)
    assert len(problems) == 7, problems


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_pod_meets_the_restricted_standard(value_set: str) -> None:
    specs = pod_specs(render(value_set))
    assert len(specs) >= 2
    for name, spec in specs:
        assert restricted_violations(name, spec) == []


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_container_is_hardened_bounded_and_probed(value_set: str) -> None:
    objects = render(value_set)
    for obj in objects:
        if obj["kind"] != "Deployment":
            continue
        spec = obj["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] >= 5
        for container in spec["containers"]:
            where = f"{obj['metadata']['name']}/{container['name']}"
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
            assert set(container["resources"]) == {"requests", "limits"}, where
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", where
            assert container["livenessProbe"]["httpGet"]["path"] == "/livez", where
            assert not container["image"].endswith(":latest"), where
            assert ":" in container["image"].rsplit("/", 1)[-1], where
            writable = {mount["mountPath"] for mount in container.get("volumeMounts", []) if not mount.get("readOnly")}
            assert "/tmp" in writable, where


def test_serving_pods_mount_no_api_token_and_drain_gracefully() -> None:
    objects = render("default")
    for track in ("stable", "canary"):
        spec = named(objects, "Deployment", f"release-plinth-serving-{track}")["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"] > 0
        assert spec["terminationGracePeriodSeconds"] > spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_each_replicated_deployment_has_a_pdb_that_allows_a_disruption(value_set: str) -> None:
    objects = render(value_set)
    hpa_min = {obj["spec"]["scaleTargetRef"]["name"]: obj["spec"]["minReplicas"]
               for obj in objects if obj["kind"] == "HorizontalPodAutoscaler"}
    budgets = [obj for obj in objects if obj["kind"] == "PodDisruptionBudget"]
    replicated = 0
    for deployment in (obj for obj in objects if obj["kind"] == "Deployment"):
        name = deployment["metadata"]["name"]
        replicas = deployment["spec"].get("replicas", hpa_min.get(name, 1))
        if replicas <= 1:
            continue
        replicated += 1
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [pdb for pdb in budgets if _selects(pdb["spec"]["selector"]["matchLabels"], labels)]
        assert len(matching) == 1, f"{name}: {len(matching)} PodDisruptionBudgets select it"
        spec = matching[0]["spec"]
        if "maxUnavailable" in spec:
            assert 1 <= spec["maxUnavailable"] < replicas, name
        else:
            assert spec["minAvailable"] <= replicas - 1, name
    assert replicated >= 1
