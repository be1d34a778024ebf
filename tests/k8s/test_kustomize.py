"""GitOps manifests under the real kubectl: every overlay and the platform add-ons render and validate."""

from __future__ import annotations

import configparser
import re
import sys

import pytest
from k8s_tooling import ROOT, load_documents, pod_specs, restricted_violations, run, tool, validate_object

MANIFESTS = ROOT / "manifests"
OVERLAYS = sorted(path.name for path in (MANIFESTS / "overlays").iterdir() if path.is_dir())
TARGETS = [f"overlays/{name}" for name in OVERLAYS] + ["platform"]
DEPRECATED = re.compile(r"^(bases|patchesStrategicMerge|patchesJson6902|commonLabels|vars):", re.MULTILINE)


def kustomize(target: str) -> list[dict]:
    result = run([tool("kubectl"), "kustomize", str(MANIFESTS / target)])
    assert result.returncode == 0, result.stderr
    return load_documents(result.stdout)


def test_there_are_staging_and_prod_overlays() -> None:
    assert {"staging", "prod"} <= set(OVERLAYS)


@pytest.mark.parametrize("target", TARGETS)
def test_kustomize_renders_valid_restricted_objects(target: str) -> None:
    objects = kustomize(target)
    assert len(objects) >= 5
    for obj in objects:
        validate_object(obj)
    specs = pod_specs(objects)
    assert specs
    for name, spec in specs:
        assert restricted_violations(name, spec) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_desires_a_model_version_on_the_canary_and_pins_image_and_environment(overlay: str) -> None:
    objects = kustomize(f"overlays/{overlay}")
    deployments = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "Deployment"}
    canary = deployments["plinth-classifier-canary"]["spec"]["template"]["spec"]["containers"][0]
    desired = {entry["name"]: entry.get("value") for entry in canary["env"]}
    assert re.fullmatch(r"[0-9]+", desired["PLINTH_MODEL_VERSION"])
    assert "replicas" not in deployments["plinth-classifier-canary"]["spec"], "the controller sizes the canary"
    stable = deployments["plinth-classifier-stable"]["spec"]["template"]["spec"]["containers"][0]
    served = {entry["name"]: entry for entry in stable["env"]}["PLINTH_MODEL_VERSION"]
    assert served["valueFrom"]["configMapKeyRef"] == {
        "name": "plinth-classifier-rollout-state",
        "key": "stableVersion",
        "optional": True,
    }, "the stable serves what the controller promoted, never Git's desired version"
    assert not (MANIFESTS / "overlays" / overlay / "pin.yaml").exists()
    controller = deployments["plinth-classifier-rollout"]["spec"]["template"]["spec"]["containers"][0]
    assert {entry["name"]: entry.get("value") for entry in controller["env"]}["PLINTH_ENVIRONMENT"] == overlay
    for deployment in deployments.values():
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert re.fullmatch(r"ghcr\.io/plinth-mlops/plinth-serving:[0-9]+\.[0-9]+\.[0-9]+", image), image
    assert all(obj["metadata"]["labels"]["plinth.dev/environment"] == overlay for obj in objects)


def test_kustomizations_use_current_syntax_only() -> None:
    files = sorted(MANIFESTS.rglob("kustomization.yaml"))
    assert len(files) >= 6
    for path in files:
        assert not DEPRECATED.search(path.read_text()), f"{path}: deprecated kustomize field"


def test_mlflow_runs_basic_auth_with_secret_password_and_no_default_access() -> None:
    objects = kustomize("platform")
    deployment = next(obj for obj in objects if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "mlflow")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[command.index("--app-name") + 1] == "basic-auth"
    assert "localhost:5000" in command[command.index("--allowed-hosts") + 1].split(",")
    env = {entry["name"]: entry for entry in container["env"]}
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-admin",
        "key": "password",
    }
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-admin",
        "key": "flask-secret-key",
    }, "MLflow 3 refuses to start basic-auth without it"
    config = next(obj for obj in objects if obj["kind"] == "ConfigMap")
    ini = configparser.ConfigParser()
    ini.read_string(config["data"]["basic_auth.ini"])
    assert ini["mlflow"]["default_permission"] == "NO_PERMISSIONS"
    assert "admin_password" not in ini["mlflow"]
    assert all(obj["metadata"]["namespace"] == "plinth-platform" for obj in objects if obj["kind"] != "Namespace")


def test_committed_base_matches_the_chart() -> None:
    tool("helm")
    result = run([sys.executable, "-m", "serving.gitops.render_base", "--check"], cwd=ROOT)
    assert result.returncode == 0, result.stderr


RESTRICTED = {
    f"pod-security.kubernetes.io/{mode}{suffix}": value
    for mode in ("enforce", "audit", "warn")
    for suffix, value in (("", "restricted"), ("-version", "latest"))
}


@pytest.mark.parametrize("target", TARGETS)
def test_the_namespaces_the_project_owns_enforce_the_restricted_standard(target: str) -> None:
    objects = kustomize(target)
    namespaces = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "Namespace"}
    used = {obj["metadata"]["namespace"] for obj in objects if "namespace" in obj["metadata"]}
    assert used
    assert used <= set(namespaces), f"{target} renders its own namespace(s): {sorted(used)}"
    for name, namespace in namespaces.items():
        assert RESTRICTED.items() <= namespace["metadata"]["labels"].items(), name
