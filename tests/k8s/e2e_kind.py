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

from k8s_tooling import LOCAL_BIN, ROOT

from serving.embedded.processes import free_port
from serving.gitops.overlay import DESIRED_FILE, rewrite_desired

CLUSTER = "plinth-e2e"
NAMESPACE = "plinth"
# Release name and namespace of manifests/base (serving.gitops.render_base); the base values'
# fullnameOverride makes every object's name start with it.
RELEASE = "plinth-classifier"
STAGING = ROOT / "manifests" / "overlays" / "staging"
SERVING_IMAGE = "ghcr.io/plinth-mlops/plinth-serving:0.1.0"
MLFLOW_IMAGE = "ghcr.io/plinth-mlops/mlflow:3.17.2"
GATEWAY_API = "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.2.1/standard-install.yaml"
ENVOY_GATEWAY_CHART = ("oci://docker.io/envoyproxy/gateway-helm", "v1.2.6")
PROMETHEUS_CHART = ("https://prometheus-community.github.io/helm-charts", "kube-prometheus-stack", "66.3.1")
E2E_DIR = Path(__file__).resolve().parent / "e2e"
ADMIN_PASSWORD = "plinth-e2e-admin"  # a throwaway cluster's password, never a real one


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
    sh("kind", "create", "cluster", "--name", CLUSTER, "--wait", "180s")
    try:
        yield
    finally:
        sh("kind", "delete", "cluster", "--name", CLUSTER, check=False)


def build_and_load_images() -> None:
    sh("docker", "build", "-f", "serving/Dockerfile", "-t", SERVING_IMAGE, ".", timeout=1800)
    sh("docker", "build", "-t", MLFLOW_IMAGE, "manifests/platform/mlflow", timeout=900)
    for image in (SERVING_IMAGE, MLFLOW_IMAGE):
        sh("kind", "load", "docker-image", image, "--name", CLUSTER)


def install_gateway() -> None:
    kubectl("apply", "--server-side", "-f", GATEWAY_API)
    chart, version = ENVOY_GATEWAY_CHART
    helm(
        "install",
        "eg",
        chart,
        "--version",
        version,
        "-n",
        "envoy-gateway-system",
        "--create-namespace",
        "--wait",
    )
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


def install_mlflow() -> None:
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
    kubectl("apply", "-n", "plinth-platform", "-k", "manifests/platform/mlflow")
    kubectl("-n", "plinth-platform", "rollout", "status", "deploy/mlflow", "--timeout=300s")


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


def mlflow_env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_TRACKING_URI": url,
    }
