"""Our checks over every rendered pod template: Pod Security Standard "restricted", probes, PDBs."""

from __future__ import annotations

import pytest
from k8s_tooling import VALUE_SETS, named, pod_specs, render, restricted_violations

# The trigger receiver (pipelines/triggers/receive.py) has no model to load: one /healthz answers both probes.
# Components that are no BentoML service: the receiver's own health path, and the live-quality exporter, a
# prometheus-client server whose /metrics answering is its health (a store it cannot read keeps its last values),
# and the experiment's decision loop, likewise.
PROBE_PATHS = {
    "trigger-receiver": ("/healthz", "/healthz"),
    "live-quality": ("/metrics", "/metrics"),
    "experiment": ("/metrics", "/metrics"),
}


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
            component = obj["metadata"]["labels"]["app.kubernetes.io/component"]
            readiness, liveness = PROBE_PATHS.get(component, ("/readyz", "/livez"))
            assert container["readinessProbe"]["httpGet"]["path"] == readiness, where
            assert container["livenessProbe"]["httpGet"]["path"] == liveness, where
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
    assert_replicated_deployments_have_pdbs(render(value_set))


def test_the_pdb_check_is_not_vacuous() -> None:
    assert assert_replicated_deployments_have_pdbs(render("default")) == 1  # the stable track, 2 pods
    assert assert_replicated_deployments_have_pdbs(render("secrets-and-pins")) == 2  # canary.replicas=2 too


def assert_replicated_deployments_have_pdbs(objects: list[dict]) -> int:
    """Assert every Deployment with more than one pod has one PDB allowing a disruption; return how many."""
    hpa_min = {
        obj["spec"]["scaleTargetRef"]["name"]: obj["spec"]["minReplicas"]
        for obj in objects
        if obj["kind"] == "HorizontalPodAutoscaler"
    }
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
    return replicated
