"""`mlflow.uriSecret` (a tracking URI that carries a login) reaches only the pods that hold an EDIT login.

The serving pods face the internet and read the registry with their READ login (`mlflow.credentialsSecret`): they
get the credential-free `mlflow.trackingUri` and that login, never a URI Secret that may embed the controller's.
"""

from __future__ import annotations

from typing import Any

import pytest
from k8s_tooling import VALUE_SETS, env_of, load_documents, pod_specs, render_with

URI_SECRET = "mlflow-uri"
TRACKING_URI = "http://mlflow.plinth-platform.svc.cluster.local:5000"
SERVING = ("release-plinth-serving-stable", "release-plinth-serving-canary")


@pytest.fixture(scope="module")
def pods() -> dict[str, dict[str, Any]]:
    """The pod specs of every workload, with the URI Secret, the three logins and the trigger receiver on."""
    result = render_with(*VALUE_SETS["trigger-receiver"], "--set", f"mlflow.uriSecret.name={URI_SECRET}")
    assert result.returncode == 0, result.stderr
    return dict(pod_specs(load_documents(result.stdout)))


def secret_names(spec: dict[str, Any]) -> set[str]:
    """Every Secret a pod spec reads: env, envFrom, volumes (plain and projected)."""
    names = set()
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
        names |= {source["secretRef"]["name"] for source in container.get("envFrom", []) if "secretRef" in source}
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            names.add(volume["secret"]["secretName"])
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                names.add(source["secret"]["name"])
    return names


@pytest.mark.parametrize("name", SERVING)
def test_the_serving_pods_never_read_the_uri_secret(pods: dict[str, dict[str, Any]], name: str) -> None:
    spec = pods[name]
    assert URI_SECRET not in secret_names(spec)
    env = env_of(spec["containers"][0])
    assert env["MLFLOW_TRACKING_URI"] == {"name": "MLFLOW_TRACKING_URI", "value": TRACKING_URI}
    for variable in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert env[variable]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-reader"


def test_the_uri_secret_reaches_only_the_controller_and_the_trigger_receiver(pods: dict[str, dict[str, Any]]) -> None:
    readers = {name for name, spec in pods.items() if URI_SECRET in secret_names(spec)}
    assert readers == {"release-plinth-serving-rollout", "release-plinth-serving-trigger-receiver"}
    controller = env_of(pods["release-plinth-serving-rollout"]["containers"][0])
    assert controller["MLFLOW_TRACKING_URI"]["valueFrom"]["secretKeyRef"] == {"name": URI_SECRET, "key": "uri"}


def test_the_serving_pods_need_a_tracking_uri_even_with_a_uri_secret() -> None:
    result = render_with("--set", f"mlflow.uriSecret.name={URI_SECRET}", "--set", "mlflow.trackingUri=")
    assert result.returncode != 0
    assert "/mlflow/trackingUri" in result.stderr
