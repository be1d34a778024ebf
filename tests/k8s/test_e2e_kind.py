"""End to end on kind (`make e2e`): install the platform and the chart, promote one canary, roll back another.

Needs Docker, kind, helm and kubectl, and network access for the add-on charts; it skips with one line
where any is missing, and is not part of `make test` (marker `e2e`). The skip decision itself is tested here
without the marker, so `make test` proves the e2e cannot pass silently on a machine that cannot run it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from e2e_kind import (
    ADMIN_PASSWORD,
    CLUSTER,
    E2E_DIR,
    NAMESPACE,
    RELEASE,
    build_and_load_images,
    helm,
    install_gateway,
    install_mlflow,
    install_prometheus,
    kind_cluster,
    kubectl,
    missing_prerequisite,
    port_forward,
    sh,
    wait_for,
)
from mlflow import MlflowClient

MODEL = "plinth-classifier"
MLFLOW_LOCAL = "http://localhost:5000"  # MLflow's --allowed-hosts admits localhost:5000


def test_skip_reason_names_the_missing_tool(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("e2e_kind.LOCAL_BIN", tmp_path)
    reason = missing_prerequisite()
    assert reason is not None
    assert reason.startswith("e2e skipped: docker not found")
    assert "\n" not in reason


def test_skip_reason_names_an_unreachable_docker_daemon(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name, script in {"docker": "exit 1", "kind": "exit 0", "helm": "exit 0", "kubectl": "exit 0"}.items():
        tool = tmp_path / name
        tool.write_text(f"#!/bin/sh\n{script}\n")
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert missing_prerequisite() == "e2e skipped: no Docker daemon reachable (`docker info` failed)"


def rollout_status(client: MlflowClient, version: str) -> str | None:
    return client.get_model_version(MODEL, version).tags.get("plinth.rollout.staging.status")


def canary_weight() -> int:
    route = json.loads(kubectl("get", "httproute", f"{RELEASE}-plinth-serving", "-n", NAMESPACE, "-o", "json").stdout)
    weights = {ref["name"]: ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]}
    return int(weights[f"{RELEASE}-plinth-serving-canary"])


@contextlib.contextmanager
def traffic() -> Iterator[dict[str, int]]:
    """Send held-out rows to /predict through the Gateway until the test ends; count the answers."""
    from serving.rollout.train_drill import held_out_instances

    rows = held_out_instances(seed=1)
    counts = {"ok": 0, "failed": 0}
    stop = threading.Event()
    service = kubectl(
        "get",
        "svc",
        "-n",
        "envoy-gateway-system",
        "-l",
        "gateway.envoyproxy.io/owning-gateway-name=plinth-gateway",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ).stdout

    def send(base: str) -> None:
        index = 0
        while not stop.is_set():
            body = json.dumps({"instances": [rows[index % len(rows)]]}).encode()
            request = urllib.request.Request(f"{base}/predict", data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    counts["ok" if response.status == 200 else "failed"] += 1
            except OSError:
                counts["failed"] += 1
            index += 1

    with port_forward("envoy-gateway-system", f"svc/{service}", 80) as base:
        worker = threading.Thread(target=send, args=(base,), daemon=True)
        worker.start()
        yield counts
        stop.set()
        worker.join(timeout=15)


@pytest.mark.e2e
def test_install_promote_and_roll_back_on_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    reason = missing_prerequisite()
    if reason:
        pytest.skip(reason)
    from serving.rollout.train_drill import register_drill_model

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
    with kind_cluster():
        build_and_load_images()
        install_gateway()
        install_prometheus()
        install_mlflow()
        with port_forward("plinth-platform", "svc/mlflow", 5000, local_port=5000):
            client = MlflowClient(tracking_uri=MLFLOW_LOCAL, registry_uri=MLFLOW_LOCAL)
            champion = register_drill_model(MLFLOW_LOCAL, MODEL, seed=1, alias="champion")
            good = register_drill_model(MLFLOW_LOCAL, MODEL, seed=2, alias="challenger")
            bad = register_drill_model(MLFLOW_LOCAL, MODEL, seed=3, shuffle_labels=True)

            kubectl("create", "namespace", NAMESPACE)
            kubectl(
                "-n",
                NAMESPACE,
                "create",
                "secret",
                "generic",
                "mlflow-credentials",
                "--from-literal=username=admin",
                f"--from-literal=password={ADMIN_PASSWORD}",
            )
            helm(
                "install",
                RELEASE,
                "helm/plinth-serving",
                "-n",
                NAMESPACE,
                "-f",
                str(E2E_DIR / "values-e2e.yaml"),
                "--set",
                f"model.canary.version={good}",
                "--wait",
                "--timeout",
                "10m",
                timeout=900,
            )
            helm("test", RELEASE, "-n", NAMESPACE, "--timeout", "5m")

            # A good challenger: the controller steps the weight up and promotes it.
            with traffic() as counts:
                wait_for(
                    lambda: rollout_status(client, good) in {"promoted", "rolled_back"},
                    timeout=600,
                    what=f"the rollout of v{good} to finish",
                    every=10,
                )
            assert rollout_status(client, good) == "promoted"
            assert client.get_model_version_by_alias(MODEL, "champion").version == good
            assert counts["ok"] > 0

            # A garbage challenger (shuffled labels): prediction divergence rolls it back.
            helm(
                "upgrade",
                RELEASE,
                "helm/plinth-serving",
                "-n",
                NAMESPACE,
                "--reuse-values",
                "--set",
                f"model.canary.version={bad}",
                "--wait",
                "--timeout",
                "10m",
                timeout=900,
            )
            kubectl("-n", NAMESPACE, "rollout", "restart", f"deploy/{RELEASE}-plinth-serving-rollout")
            with traffic():
                wait_for(
                    lambda: rollout_status(client, bad) in {"promoted", "rolled_back"},
                    timeout=600,
                    what=f"the rollout of v{bad} to finish",
                    every=10,
                )
            assert rollout_status(client, bad) == "rolled_back"
            assert client.get_model_version_by_alias(MODEL, "champion").version == good
            assert canary_weight() == 0
            events = kubectl("get", "events", "-n", NAMESPACE, "-o", "json").stdout
            assert "rolled" in events.lower()
            assert champion != good != bad
    assert CLUSTER not in sh("kind", "get", "clusters").stdout.split()
