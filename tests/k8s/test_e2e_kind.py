"""End to end on kind (`make e2e`): install the platform and the chart, promote one canary, roll back another,
then drive the chart's HTTPRoute with the controller's cluster edge directly.

Needs Docker, kind, helm and kubectl, and network access for the add-on charts; it skips with one line
where any is missing, and is not part of `make test` (marker `e2e`). The skip decision itself is tested here
without the marker, so `make test` proves the e2e cannot pass silently on a machine that cannot run it.
One cluster serves the module (a module-scoped fixture), created and deleted around both e2e tests.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml
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
from k8s_tooling import CHART, load_documents, named, run, tool
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


@dataclass(frozen=True)
class ChartNames:
    """The names the chart gives one release's objects (helm/plinth-serving/templates/_helpers.tpl)."""

    release: str

    @property
    def route(self) -> str:
        return f"{self.release}-plinth-serving"

    @property
    def stable(self) -> str:
        return f"{self.route}-stable"

    @property
    def canary(self) -> str:
        return f"{self.route}-canary"

    @property
    def controller(self) -> str:
        return f"{self.route}-rollout"


def test_the_e2e_uses_the_names_the_chart_renders() -> None:
    """Without a cluster: the route, Services and Deployments the e2e addresses exist under those names."""
    names = ChartNames(RELEASE)
    rendered = run(
        [tool("helm"), "template", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(E2E_DIR / "values-e2e.yaml")]
    )
    assert rendered.returncode == 0, rendered.stderr
    objects = load_documents(rendered.stdout)
    route = named(objects, "HTTPRoute", names.route)
    assert {ref["name"] for rule in route["spec"]["rules"] for ref in rule["backendRefs"]} == {
        names.stable,
        names.canary,
    }
    for name in (names.stable, names.canary):
        named(objects, "Service", name)
        named(objects, "Deployment", name)
    named(objects, "Deployment", names.controller)


def rollout_status(client: MlflowClient, version: str) -> str | None:
    return client.get_model_version(MODEL, version).tags.get("plinth.rollout.staging.status")


def canary_weight() -> int:
    names = ChartNames(RELEASE)
    route = json.loads(kubectl("get", "httproute", names.route, "-n", NAMESPACE, "-o", "json").stdout)
    weights = {ref["name"]: ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]}
    return int(weights[names.canary])


@contextlib.contextmanager
def traffic() -> Iterator[dict[str, int]]:
    """Send held-out rows to /predict through the Gateway until the test ends; count the answers."""
    from serving.rollout.harness.train_drill import held_out_instances

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


@dataclass(frozen=True)
class Stack:
    """The installed stack of one kind cluster: the registry client and the three registered versions."""

    client: MlflowClient
    champion: str
    good: str
    bad: str


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """One kind cluster for the module: add-ons, three registered models, the chart with the good canary."""
    reason = missing_prerequisite()
    if reason:
        pytest.skip(reason)
    from serving.rollout.harness.train_drill import register_drill_model

    with pytest.MonkeyPatch.context() as patch, kind_cluster():
        patch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        patch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
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
            yield Stack(client, champion, good, bad)
    assert CLUSTER not in sh("kind", "get", "clusters").stdout.split()


def tolerated_failed_share() -> float:
    """Return the failed share the e2e analysis itself tolerates (1 - its success-rate minimum).

    A rollout the controller judges healthy must look healthy from the users' side too: through the Gateway,
    across both tracks and the stable's restart on promotion, at most the share of failed requests that the
    canary's own success-rate check accepts. (A shuffled-label canary answers 200, so the same bound holds
    while it is rolled back.)
    """
    values = yaml.safe_load((E2E_DIR / "values-e2e.yaml").read_text())
    checks = values["rolloutController"]["analysis"]["checks"]
    return 1.0 - next(float(check["min"]) for check in checks if check["name"] == "success-rate")


def assert_served(counts: dict[str, int], phase: str) -> None:
    total = counts["ok"] + counts["failed"]
    assert counts["ok"] > 0, f"{phase}: no request answered"
    assert counts["failed"] / total <= tolerated_failed_share(), f"{phase}: {counts['failed']} of {total} failed"


@pytest.mark.e2e
def test_install_promote_and_roll_back_on_kind(stack: Stack) -> None:
    client, good, bad = stack.client, stack.good, stack.bad
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
    assert_served(counts, "good canary")

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
    kubectl("-n", NAMESPACE, "rollout", "restart", f"deploy/{ChartNames(RELEASE).controller}")
    with traffic() as counts:
        wait_for(
            lambda: rollout_status(client, bad) in {"promoted", "rolled_back"},
            timeout=600,
            what=f"the rollout of v{bad} to finish",
            every=10,
        )
    assert rollout_status(client, bad) == "rolled_back"
    assert client.get_model_version_by_alias(MODEL, "champion").version == good
    assert canary_weight() == 0
    assert_served(counts, "garbage canary")
    events = kubectl("get", "events", "-n", NAMESPACE, "-o", "json").stdout
    assert "rolled" in events.lower()
    assert stack.champion != good != bad


@pytest.mark.e2e
def test_the_cluster_edge_moves_the_chart_httproute_and_rollback_restores_the_stable(stack: Stack) -> None:
    """The controller's cluster edge on the chart's real objects (names as the chart renders them)."""
    from kubernetes import config
    from kubernetes.client import CustomObjectsApi

    from serving.rollout.edges.kube import GROUP, PLURAL, VERSION, ClusterEdge

    names = ChartNames(RELEASE)
    # This test drives the route itself: the chart's own controller must not move it meanwhile.
    kubectl("-n", NAMESPACE, "scale", f"deploy/{names.controller}", "--replicas=0")
    api = config.new_client_from_config(context=f"kind-{CLUSTER}")
    stable, canary = names.stable, names.canary
    edge = ClusterEdge(api, NAMESPACE, names.route, stable, canary, canary, stable)

    def weights() -> dict[str, int]:
        route = CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, names.route)
        return {ref["name"]: ref["weight"] for rule in route["spec"]["rules"] for ref in rule["backendRefs"]}

    edge.prepare()
    edge.set_weight(25)
    assert weights() == {stable: 75, canary: 25}
    edge.rollback()
    assert weights() == {stable: 100, canary: 0}
    replicas = kubectl("-n", NAMESPACE, "get", f"deploy/{canary}", "-o", "jsonpath={.spec.replicas}").stdout
    assert replicas == "0"


def test_failed_requests_beyond_the_analysis_tolerance_fail_the_e2e() -> None:
    assert tolerated_failed_share() == pytest.approx(0.05)
    assert_served({"ok": 95, "failed": 5}, "at the bound")
    with pytest.raises(AssertionError, match="6 of 100 failed"):
        assert_served({"ok": 94, "failed": 6}, "over the bound")
    with pytest.raises(AssertionError, match="no request answered"):
        assert_served({"ok": 0, "failed": 3}, "nothing served")
