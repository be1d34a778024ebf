"""Helpers of the Kubernetes-artifact tests: find the real tools, render the chart, validate objects."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "plinth-serving"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
LOCAL_BIN = ROOT / ".tools" / "bin"
# The Kubernetes version whose OpenAPI schemas every rendered core object must satisfy.
KUBERNETES_VERSION = "1.33.0"
NAMESPACE = "plinth"
CRD_SCHEMAS = {
    (
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
    ): "httproute-gateway.networking.k8s.io-v1-gateway-api-v1.2.1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): (
        "servicemonitor-monitoring.coreos.com-v1-prometheus-operator-v0.84.1.json"
    ),
    ("monitoring.coreos.com/v1", "PrometheusRule"): (
        "prometheusrule-monitoring.coreos.com-v1-prometheus-operator-v0.82.2.json"
    ),
    ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"): (
        "alertmanagerconfig-monitoring.coreos.com-v1alpha1-crds-catalog.json"
    ),
    ("kubernetes.dask.org/v1", "DaskCluster"): "daskcluster-kubernetes.dask.org-v1-dask-kubernetes-2026.3.0.json",
}

# Kinds without a namespace: the controller's admission policy and its binding, the kustomize bases' Namespace.
CLUSTER_SCOPED = {"Namespace", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}

# What every install must say about its cluster (the chart has no default for it): the API server's address,
# as `kubectl get endpoints kubernetes -n default` shows it on kind.
CLUSTER_VALUES = ["--set", "networkPolicy.apiServerCidrs={172.18.0.2/32}"]

# The public key that verifies model signatures (the chart requires one while signing.required is true): an
# example key pair's public half, as `--set-file` passes a real installation's.
EXAMPLE_PUBLIC_KEY = Path(__file__).resolve().parent / "signing-example.pub.pem"
SIGNING_VALUES = ["--set-file", f"signing.publicKey={EXAMPLE_PUBLIC_KEY}"]

# Ground-truth feedback on, its store a CloudNativePG cluster's Secret and pods (labellers' tokens from a Secret).
FEEDBACK_STORE_VALUES = [
    "--set",
    "feedback.enabled=true",
    "--set",
    "feedback.store.secretName=plinth-predictions-app",
    "--set",
    "feedback.tokensSecret=plinth-labellers",
    "--set-json",
    'feedback.store.peers=[{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": '
    '"plinth-platform"}}, "podSelector": {"matchLabels": {"cnpg.io/cluster": "plinth-predictions"}}}]',
]

# Value sets the chart must render and validate under; each names a real way to install it.
VALUE_SETS: dict[str, list[str]] = {
    "default": [*SIGNING_VALUES],
    "canary-off": [*SIGNING_VALUES, "--set", "canary.enabled=false"],
    "crds-off": [
        *SIGNING_VALUES,
        "--set",
        "httpRoute.enabled=false",
        "--set",
        "serviceMonitor.enabled=false",
        "--set",
        "prometheusRule.enabled=false",
    ],
    "node-pools": [
        *SIGNING_VALUES,
        "--set",
        "nodeSelector.plinth\\.dev/pool=serving",
        "--set",
        "tolerations[0].key=plinth.dev/pool",
        "--set",
        "tolerations[0].operator=Equal",
        "--set",
        "tolerations[0].value=serving",
        "--set",
        "tolerations[0].effect=NoSchedule",
        "--set",
        "topologySpreadConstraints[0].maxSkew=1",
        "--set",
        "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
        "--set",
        "topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
        "--set",
        "autoscaling.enabled=true",
    ],
    # The two registry logins: the serving pods' (READ on the model) and the controller's (EDIT).
    "registry-logins": [
        *SIGNING_VALUES,
        "--set",
        "mlflow.credentialsSecret.name=mlflow-reader",
        "--set",
        "mlflow.controllerCredentialsSecret.name=mlflow-controller",
    ],
    "e2e": ["--values", str(Path(__file__).resolve().parent / "e2e" / "values-e2e.yaml")],
    # Ground-truth feedback on: the shared prediction store (a CloudNativePG cluster's Secret and pods) and the
    # one live-quality exporter reading it.
    "feedback-store": [
        *SIGNING_VALUES,
        *FEEDBACK_STORE_VALUES,
        # … and the payload archive in Kubeflow's MinIO, its keys from a Secret.
        "--set",
        "feedback.archive.url=s3://plinth-payloads/production",
        "--set",
        "feedback.archive.credentialsSecret=plinth-payloads-s3",
        "--set-json",
        'feedback.archive.peers=[{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": '
        '"kubeflow"}}, "podSelector": {"matchLabels": {"app": "minio"}}}]',
        "--set",
        "feedback.archive.port=9000",
    ],
    # An A/B experiment on the two tracks with its decision loop (outcomes from the feedback store, its own
    # registry login); tests/k8s/test_experiment_chart.py checks it in detail.
    "experiment": [
        *SIGNING_VALUES,
        "--set",
        "rolloutController.enabled=false",
        "--set",
        "experiment.enabled=true",
        "--set",
        "experiment.startedAt=1765000000",
        *FEEDBACK_STORE_VALUES,
        "--set",
        "mlflow.credentialsSecret.name=mlflow-reader",
        "--set",
        "experiment.decision.mlflowCredentialsSecret.name=mlflow-experiments",
    ],
    # The retraining trigger receiver beside the stack, with its own registry login (EDIT) and the live-quality
    # alert; tests/k8s/test_trigger_receiver.py checks it in detail.
    "trigger-receiver": [
        *SIGNING_VALUES,
        "--set",
        "triggerReceiver.enabled=true",
        "--set",
        "triggerReceiver.kfpHost=http://ml-pipeline.kubeflow.svc.cluster.local:8888",
        "--set",
        "mlflow.credentialsSecret.name=mlflow-reader",
        "--set",
        "mlflow.controllerCredentialsSecret.name=mlflow-controller",
        "--set",
        "triggerReceiver.mlflowCredentialsSecret.name=mlflow-triggers",
        "--set",
        "triggerReceiver.tokenSecret.name=plinth-trigger-token",
        "--set-json",
        "prometheusRule.liveQuality.minAccuracy=0.9",
    ],
    # Without the rollout controller: the stable pinned by value, the canary sized by values; no key, models
    # unsigned (signature checks off).
    "secrets-and-pins": [
        "--set",
        "signing.required=false",
        "--set",
        "mlflow.uriSecret.name=mlflow-uri",
        "--set",
        "mlflow.credentialsSecret.name=mlflow-reader",
        "--set",
        "rolloutController.enabled=false",
        "--set",
        "model.stable.version=3",
        "--set",
        "model.version=4",
        "--set",
        "canary.replicas=2",
        "--set",
        "httpRoute.weights.stable=90",
        "--set",
        "httpRoute.weights.canary=10",
    ],
}


def tool(name: str) -> str:
    """Return the path of `name` on PATH or in .tools/bin; fail (not skip) when it is missing."""
    found = shutil.which(name) or shutil.which(name, path=str(LOCAL_BIN))
    if found is None:
        pytest.fail(f"{name} not found on PATH or in {LOCAL_BIN}: run `bash .ci/install-k8s-tools.sh`")
    return found


def assert_promtool_alerts(
    promtool: str, workdir: Path, inputs: list[dict[str, str]], eval_time: str, expected: dict[str, list[Any]]
) -> None:
    """`promtool test rules` on workdir/rules.yaml: at `eval_time` the input series fire exactly `expected`."""
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "alert_rule_test": [
                    {"eval_time": eval_time, "alertname": name, "exp_alerts": alerts}
                    for name, alerts in expected.items()
                ],
            }
        ],
    }
    (workdir / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yaml"], cwd=workdir, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a tool and return the finished process; output is captured as text."""
    env = {**os.environ, "PATH": f"{os.environ.get('PATH', '')}{os.pathsep}{LOCAL_BIN}"}
    return subprocess.run(args, capture_output=True, text=True, env=env, check=False, timeout=120, **kwargs)


@cache
def render_text(value_set: str) -> str:
    """Render the chart with one named value set, the way `helm install -n plinth` would."""
    args = [*CLUSTER_VALUES, *VALUE_SETS[value_set]]
    result = run([tool("helm"), "template", "release", str(CHART), "--namespace", NAMESPACE, *args])
    assert result.returncode == 0, result.stderr
    return result.stdout


def load_documents(text: str) -> list[dict[str, Any]]:
    """Parse multi-document YAML, dropping empty documents."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(value_set: str) -> list[dict[str, Any]]:
    """Return the rendered objects of one value set (a fresh copy each call)."""
    return load_documents(render_text(value_set))


def render_with(*args: str, cluster: bool = True, signing: bool = True) -> subprocess.CompletedProcess[str]:
    """Render with ad-hoc arguments (after CLUSTER_VALUES unless `cluster` is false, and SIGNING_VALUES unless
    `signing` is false) and return the process, so a test can assert a refusal."""
    values = [*(CLUSTER_VALUES if cluster else []), *(SIGNING_VALUES if signing else [])]
    return run([tool("helm"), "template", "release", str(CHART), "--namespace", NAMESPACE, *values, *args])


@cache
def crd_schema(file_name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / file_name).read_text())
    return schema


def validate_object(obj: dict[str, Any]) -> None:
    """Validate one object against its vendored CRD schema or the Kubernetes OpenAPI; unknown kinds fail."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in CRD_SCHEMAS:
        jsonschema.validate(obj, crd_schema(CRD_SCHEMAS[key]))
        return
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return [obj["kind"] for obj in objects]


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Return (object name, pod spec) of every Pod and every workload's pod template."""
    specs = []
    for obj in objects:
        if obj["kind"] == "Pod":
            specs.append((obj["metadata"]["name"], obj["spec"]))
        elif obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}:
            specs.append((obj["metadata"]["name"], obj["spec"]["template"]["spec"]))
    return specs


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


# Volume types the "restricted" profile allows.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


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
        if merged.get("runAsUser") == 0:
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
