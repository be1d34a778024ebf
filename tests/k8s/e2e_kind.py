"""The kind e2e's plumbing: prerequisites, cluster lifecycle, add-ons, the staging overlay it applies.

Kept apart from the test module so that the skip decision (`missing_prerequisite`) and the overlay the e2e
applies (`build_overlay`) are tested where no Docker runs, and the test reads as the user's story: Git says
what staging should serve, the rollout controller rolls it out, and restarts change nothing.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from k8s_tooling import LOCAL_BIN, ROOT

from pipelines.images import COMPONENTS, IMAGES, MLFLOW
from serving.embedded.processes import free_port
from serving.gitops.overlay import DESIRED_FILE, rewrite_desired

CLUSTER = "plinth-e2e"
NAMESPACE = "plinth"
# Release name and namespace of manifests/base (serving.gitops.render_base); the base values'
# fullnameOverride makes every object's name start with it.
RELEASE = "plinth-classifier"
STAGING = ROOT / "manifests" / "overlays" / "staging"
PLATFORM = ROOT / "manifests" / "platform"
# The registry the committed overlays name (`make images` tags into the local store with it, `kind load` copies).
REGISTRY = "ghcr.io/plinth-mlops"
# Set by .github/workflows/e2e.yaml after its own `make images` step: only `kind load` them here.
ENV_PREBUILT = "PLINTH_E2E_IMAGES_PREBUILT"
# Set by .github/workflows/e2e.yaml: there, a missing Docker or kind fails the e2e instead of skipping it.
ENV_REQUIRED = "PLINTH_E2E_REQUIRED"
# Where the controller's logs, the events and the rollout timelines go (the workflow uploads the folder).
ENV_ARTIFACTS = "PLINTH_E2E_ARTIFACTS"
# kind v0.27.0 and its own default node image, pinned by digest (pkg/apis/config/defaults/image.go at that tag):
# Kubernetes 1.32, where the chart's ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1, GA in 1.30)
# is served, and inside Envoy Gateway v1.3's supported range (1.29-1.32). The workflow installs this kind.
KIND_VERSION = "v0.27.0"
KIND_NODE_IMAGE = "kindest/node:v1.32.2@sha256:f226345927d7e348497136874b6d207e0b32cc52154ad8323129352923a3142f"
# The Gateway API release whose HTTPRoute schema the chart is validated against (tests/k8s/schemas).
GATEWAY_API_VERSION = "v1.2.1"
GATEWAY_API = (
    f"https://github.com/kubernetes-sigs/gateway-api/releases/download/{GATEWAY_API_VERSION}/standard-install.yaml"
)
# Envoy Gateway: backend weights are HTTPRoute core, RequestMirror (the controller's shadow phase) is among the
# extended features it passes conformance for; v1.3 is the release built against Gateway API v1.2.1 (its
# compatibility matrix), one Helm chart, and its data plane runs in envoy-gateway-system, the namespace the
# chart's NetworkPolicy admits by default (networkPolicy.gatewayNamespaceLabels).
ENVOY_GATEWAY_CHART = ("oci://docker.io/envoyproxy/gateway-helm", "v1.3.3")
GATEWAY_NAMESPACE = "envoy-gateway-system"
# kube-prometheus-stack 76.5.1 runs Prometheus Operator v0.84.1, the ServiceMonitor schema the chart is checked
# against; with it a Prometheus (prometheus-operated.monitoring, the controller's prometheusUrl).
PROMETHEUS_CHART = ("https://prometheus-community.github.io/helm-charts", "kube-prometheus-stack", "76.5.1")
E2E_DIR = Path(__file__).resolve().parent / "e2e"
ADMIN_PASSWORD = "plinth-e2e-admin"  # a throwaway cluster's password, never a real one
# The two registry logins exactly as manifests/README.md ("Two registry logins") grants them: Secret name, user,
# permission on the model, permission on the experiment that holds its files. With READ on the experiment,
# MLflow 3.17 answers 403 to the controller's upload of a rollout's history and timeline to the version's run
# (serving/rollout/core/record.py logs a warning and the tags `.history`/`.timeline` stay unset): the e2e's
# timeline assertion fails until the documented grant (or where the controller writes) changes.
LOGINS = {
    "mlflow-reader": ("plinth-reader", "READ", "READ"),
    "mlflow-controller": ("plinth-controller", "EDIT", "READ"),
}


def which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=str(LOCAL_BIN))


def missing_prerequisite() -> str | None:
    """Return one line saying why the e2e cannot run here, or None when it can."""
    for name in ("docker", "kind", "helm", "kubectl"):
        if which(name) is None:
            return f"e2e skipped: {name} not found (the kind e2e needs Docker, kind, helm and kubectl)"
    docker = which("docker")
    assert docker is not None
    try:
        info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return "e2e skipped: the Docker daemon did not answer `docker info` within 20 s"
    if info.returncode != 0:
        return "e2e skipped: no Docker daemon reachable (`docker info` failed)"
    return None


def sh(*args: str, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root; fail with its output when it fails."""
    binary = which(args[0]) or args[0]
    result = subprocess.run([binary, *args[1:]], capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def kubectl(*args: str, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run kubectl against the e2e cluster."""
    return sh("kubectl", "--context", f"kind-{CLUSTER}", *args, timeout=timeout, check=check)


def helm(*args: str, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm against the e2e cluster."""
    return sh("helm", "--kube-context", f"kind-{CLUSTER}", *args, timeout=timeout, check=check)


@contextlib.contextmanager
def kind_cluster() -> Iterator[None]:
    """Create the kind cluster and delete it afterwards, whatever happened in between."""
    sh("kind", "delete", "cluster", "--name", CLUSTER, check=False)
    sh("kind", "create", "cluster", "--name", CLUSTER, "--image", KIND_NODE_IMAGE, "--wait", "180s")
    try:
        yield
    finally:
        sh("kind", "delete", "cluster", "--name", CLUSTER, check=False)


def build_and_load_images() -> None:
    """`make images` (local store, this machine's platform) unless the workflow did, then `kind load` all three."""
    if os.environ.get(ENV_PREBUILT) != "1":
        sh("make", "images", f"REGISTRY={REGISTRY}", timeout=3600)
    for image in IMAGES:
        sh("kind", "load", "docker-image", image.reference(REGISTRY), "--name", CLUSTER, timeout=900)


def install_gateway() -> None:
    kubectl("apply", "--server-side", "-f", GATEWAY_API)
    chart, version = ENVOY_GATEWAY_CHART
    # The chart's crds/ also hold Gateway API CRDs; Helm leaves the standard ones applied above as they are.
    helm("install", "eg", chart, "--version", version, "-n", GATEWAY_NAMESPACE, "--create-namespace", "--wait")
    kubectl("create", "namespace", "gateway-system")
    kubectl("apply", "-f", str(E2E_DIR / "gateway.yaml"))
    kubectl(
        "wait",
        "-n",
        "gateway-system",
        "gateway/plinth-gateway",
        "--for=condition=Programmed",
        "--timeout=300s",
    )


def install_prometheus() -> None:
    repo, chart, version = PROMETHEUS_CHART
    helm("repo", "add", "prometheus-community", repo, "--force-update")
    helm(
        "install",
        "prom",
        f"prometheus-community/{chart}",
        "--version",
        version,
        "-n",
        "monitoring",
        "--create-namespace",
        "--wait",
        "--timeout",
        "10m",
        "--set",
        "grafana.enabled=false",
        "--set",
        "alertmanager.enabled=false",
        "--set",
        "prometheus.prometheusSpec.serviceMonitorSelectorNilUsesHelmValues=false",
        "--set",
        "prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues=false",
        "--set",
        "prometheus.prometheusSpec.scrapeInterval=5s",
        timeout=900,
    )


def platform_overlay(directory: Path) -> Path:
    """Write an overlay of a copy of manifests/platform that pulls the images this run built; return its folder.

    The copy is the real one; the overlay moves its two images to the tags `make images` gave them (the
    committed pins may name a digest or another release) and takes the small-cluster MLflow component (SQLite on
    a volume, one replica): the production default wants a PostgreSQL and an object store this cluster lacks,
    and tests/storage runs that mode against real ones.
    """
    shutil.copytree(PLATFORM, directory / "platform")
    overlay = directory / "platform-e2e"
    overlay.mkdir()
    images = "".join(
        f'  - name: {REGISTRY}/{image.name}\n    newName: {REGISTRY}/{image.name}\n    newTag: "{image.tag}"\n'
        for image in (MLFLOW, COMPONENTS)
    )
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../platform\n"
        "components:\n  - ../platform/components/mlflow-sqlite\n"
        f"images:\n{images}"
    )
    return overlay


def install_platform(directory: Path) -> None:
    """manifests/platform (MLflow with basic-auth, the pipeline upload Job) with the admin Secret it needs.

    The upload Job has no Kubeflow Pipelines to reach in this cluster: it fails and retries, and nothing waits on it.
    """
    kubectl("create", "namespace", "plinth-platform")
    kubectl(
        "-n",
        "plinth-platform",
        "create",
        "secret",
        "generic",
        "mlflow-admin",
        f"--from-literal=password={ADMIN_PASSWORD}",
        f"--from-literal=flask-secret-key={secrets.token_hex(32)}",
    )
    kubectl("apply", "-k", str(platform_overlay(directory)))
    kubectl("-n", "plinth-platform", "rollout", "status", "deploy/mlflow", "--timeout=300s", timeout=360)


def create_logins(url: str, model: str, experiment_id: str) -> dict[str, str]:
    """Make the two registry users with the admin REST calls of manifests/README.md; return Secret -> password.

    Each gets its grant on the model and on the experiment that holds the model files (`LOGINS`).
    """
    passwords: dict[str, str] = {}
    for secret, (user, on_model, on_experiment) in LOGINS.items():
        password = secrets.token_hex(24)
        admin_post(url, "/api/2.0/mlflow/users/create", {"username": user, "password": password})
        for resource_type, resource_id, granted in (
            ("registered_model", model, on_model),
            ("experiment", experiment_id, on_experiment),
        ):
            body = {"username": user, "resource_type": resource_type, "resource_id": resource_id}
            admin_post(url, "/api/3.0/mlflow/users/permissions/grant", {**body, "permission": granted})
        passwords[secret] = password
    return passwords


def admin_post(url: str, path: str, body: dict[str, str]) -> None:
    response = httpx.post(f"{url}{path}", json=body, auth=("admin", ADMIN_PASSWORD), timeout=30)
    if response.status_code != 200:
        raise AssertionError(f"{path}: {response.status_code} {response.text}")


def collect_artifacts(directory: Path, killed_logs: dict[str, str]) -> None:
    """Write what a failed run is read from: the controller's logs (killed pods' too), events, pods, the route."""
    directory.mkdir(parents=True, exist_ok=True)
    for pod, text in killed_logs.items():
        (directory / f"controller-{pod}.log").write_text(text)
    captures = {
        "controller.log": ("logs", f"deploy/{RELEASE}-rollout", "-n", NAMESPACE, "--timestamps", "--all-containers"),
        "events.txt": ("get", "events", "-A", "--sort-by=.lastTimestamp", "-o", "wide"),
        "pods.txt": ("get", "pods", "-A", "-o", "wide"),
        "httproute.yaml": ("get", "httproute", "-n", NAMESPACE, "-o", "yaml"),
        "rollout-state.yaml": ("get", "configmap", f"{RELEASE}-rollout-state", "-n", NAMESPACE, "-o", "yaml"),
    }
    for name, args in captures.items():
        result = kubectl(*args, check=False, timeout=120)
        (directory / name).write_text(result.stdout + result.stderr)


def build_overlay(directory: Path) -> Path:
    """Write a copy of the staging overlay on a base rendered with the e2e values; return the overlay's folder.

    The base is rendered the way `python -m serving.gitops.render_base` does (same release, namespace and
    base values), with tests/k8s/e2e/values-e2e.yaml on top for a fast analysis and Envoy Gateway's
    namespace. The overlay's files are the real ones; only its path to the base changes.
    """
    base = directory / "base"
    base.mkdir(parents=True)
    rendered = sh(
        "helm",
        "template",
        RELEASE,
        "helm/plinth-serving",
        "--namespace",
        NAMESPACE,
        "--skip-tests",
        "--values",
        "manifests/base/values.yaml",
        "--values",
        str(E2E_DIR / "values-e2e.yaml"),
    )
    (base / "serving.yaml").write_text(rendered.stdout)
    for path in (ROOT / "manifests" / "base").glob("*.yaml"):
        if path.name not in {"serving.yaml", "values.yaml"}:
            shutil.copy2(path, base / path.name)  # kustomization.yaml, namespace.yaml
    overlay = directory / "staging"
    shutil.copytree(STAGING, overlay)
    kustomization = overlay / "kustomization.yaml"
    text = kustomization.read_text()
    if "  - ../../base\n" not in text:
        raise AssertionError(f"{STAGING / 'kustomization.yaml'} no longer names ../../base as its resource")
    kustomization.write_text(text.replace("  - ../../base\n", "  - ../base\n"))
    return overlay


def set_desired(overlay: Path, version: str) -> None:
    """Rewrite the overlay's desired version, as `make promote` does (only the value line changes)."""
    path = overlay / DESIRED_FILE
    path.write_text(rewrite_desired(path.read_text(), version))


@contextlib.contextmanager
def port_forward(namespace: str, target: str, remote_port: int, local_port: int = 0) -> Iterator[str]:
    """Forward a local port (free one unless given) to `target` and yield its base URL while it runs."""
    port = local_port or free_port()
    binary = which("kubectl") or "kubectl"
    process = subprocess.Popen(
        [
            binary,
            "--context",
            f"kind-{CLUSTER}",
            "-n",
            namespace,
            "port-forward",
            target,
            f"{port}:{remote_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _port_open(port), timeout=60, what=f"port-forward to {target}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str, every: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
