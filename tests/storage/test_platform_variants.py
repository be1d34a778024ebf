"""manifests/platform: MLflow in production mode by default; the small-cluster and CloudNativePG components.

Each variant is rendered by the real kubectl as a user's overlay would (`resources: [platform]`,
`components: [...]`) and checked like the default: valid objects, the restricted Pod Security Standard.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = ROOT / "manifests" / "platform"
sys.path.insert(0, str(ROOT / "tests" / "k8s"))
from k8s_tooling import (  # noqa: E402 (the k8s tier's helpers live beside its tests)
    env_of,
    load_documents,
    named,
    pod_specs,
    restricted_violations,
    run,
    tool,
    validate_object,
)


def render(tmp_path: Path, *components: str) -> list[dict]:
    """Render the platform with `components`, from an overlay in tmp_path (kustomize wants relative paths)."""
    base = os.path.relpath(PLATFORM, tmp_path)
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [base],
        "components": [f"{base}/components/{name}" for name in components],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    result = run([tool("kubectl"), "kustomize", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    return load_documents(result.stdout)


def checked(objects: list[dict]) -> list[dict]:
    for obj in objects:
        if obj["apiVersion"] != "postgresql.cnpg.io/v1":  # no vendored CRD schema; checked field by field below
            validate_object(obj)
    for name, spec in pod_specs(objects):
        assert restricted_violations(name, spec) == []
    return objects


def test_production_mode_is_stateless_with_two_replicas_a_budget_and_secrets(tmp_path: Path):
    objects = checked(render(tmp_path))
    deployment = named(objects, "Deployment", "mlflow")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert "PersistentVolumeClaim" not in {obj["kind"] for obj in objects}
    assert not [v for v in spec["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v]
    budget = named(objects, "PodDisruptionBudget", "mlflow")["spec"]
    assert budget["minAvailable"] == 1
    assert budget["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    [container] = spec["template"]["spec"]["containers"]
    command = container["command"]
    assert "--backend-store-uri" not in command, "the URI holds a password: it comes from the Secret"
    assert command[command.index("--artifacts-destination") + 1] == "$(MLFLOW_ARTIFACTS_DESTINATION)"
    assert "--serve-artifacts" in command
    env = env_of(container)
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-db", "key": "uri"}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-artifacts"
    storage = named(objects, "ConfigMap", env["MLFLOW_ARTIFACTS_DESTINATION"]["valueFrom"]["configMapKeyRef"]["name"])
    assert storage["data"]["artifacts-destination"].startswith("s3://")
    assert storage["data"]["s3-endpoint-url"].startswith("http://minio-service.kubeflow")
    assert env["MLFLOW_S3_ENDPOINT_URL"]["valueFrom"]["configMapKeyRef"]["optional"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    [init] = spec["template"]["spec"]["initContainers"]
    assert init["image"] == container["image"]
    assert env_of(init)["MLFLOW_AUTH_DATABASE_URI"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-db", "key": "uri"}
    rendered = next(v for v in spec["template"]["spec"]["volumes"] if v["name"] == "auth-rendered")
    assert rendered["emptyDir"]["medium"] == "Memory", "the rendered ini holds a password: never on a disk"
    egress = named(objects, "NetworkPolicy", "mlflow")["spec"]["egress"]
    ports = {port["port"] for rule in egress for port in rule["ports"]}
    assert {5432, 9000, 8333} <= ports


def test_the_small_cluster_component_is_sqlite_on_a_volume_one_replica(tmp_path: Path):
    objects = checked(render(tmp_path, "mlflow-sqlite"))
    spec = named(objects, "Deployment", "mlflow")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}, "SQLite on ReadWriteOnce: never two servers at once"
    pod = spec["template"]["spec"]
    assert "initContainers" not in pod
    assert "affinity" not in pod
    [container] = pod["containers"]
    command = container["command"]
    assert command[command.index("--backend-store-uri") + 1] == "sqlite:////mlflow/mlflow.db"
    assert command[command.index("--artifacts-destination") + 1] == "/mlflow/artifacts"
    env = env_of(container)
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"] == "/etc/mlflow/basic_auth.ini"
    assert not {"MLFLOW_BACKEND_STORE_URI", "AWS_ACCESS_KEY_ID", "MLFLOW_ARTIFACTS_DESTINATION"} & set(env)
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts == {"data": "/mlflow", "auth": "/etc/mlflow", "tmp": "/tmp"}
    claim = next(v for v in pod["volumes"] if v["name"] == "data")["persistentVolumeClaim"]["claimName"]
    assert named(objects, "PersistentVolumeClaim", claim)["metadata"]["namespace"] == "plinth-platform"
    assert "PodDisruptionBudget" not in {obj["kind"] for obj in objects}


def test_the_cloudnativepg_component_gives_mlflow_the_operators_secret(tmp_path: Path):
    objects = checked(render(tmp_path, "cloudnativepg"))
    cluster = named(objects, "Cluster", "mlflow-db")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    assert cluster["metadata"]["namespace"] == "plinth-platform"
    assert cluster["spec"]["instances"] >= 2
    assert cluster["spec"]["bootstrap"]["initdb"] == {"database": "mlflow", "owner": "mlflow"}
    pod = named(objects, "Deployment", "mlflow")["spec"]["template"]["spec"]
    for container in (pod["initContainers"][0], pod["containers"][0]):
        refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})]
        assert {"name": "mlflow-db-app", "key": "uri"} in refs, container["name"]
        assert not [ref for ref in refs if ref["name"] == "mlflow-db"]
    # The database pods carry the label MLflow's egress rule on 5432 names.
    labels = cluster["spec"]["inheritedMetadata"]["labels"]
    egress = named(objects, "NetworkPolicy", "mlflow")["spec"]["egress"]
    [to_db] = [rule for rule in egress if {"port": 5432, "protocol": "TCP"} in rule["ports"]]
    assert to_db["to"][0]["podSelector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("name", ["mlflow-sqlite", "cloudnativepg"])
def test_components_use_current_kustomize_syntax(name: str):
    text = (PLATFORM / "components" / name / "kustomization.yaml").read_text()
    assert yaml.safe_load(text)["kind"] == "Component"
    for deprecated in ("bases:", "patchesStrategicMerge:", "patchesJson6902:", "commonLabels:", "vars:"):
        assert f"\n{deprecated}" not in text
