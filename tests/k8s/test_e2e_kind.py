"""End to end on kind (`make e2e`): Git says what staging should serve, the rollout controller rolls it out,
and neither its restarts nor a re-apply start a rollout that Git or a user did not ask for.

The story goes through the GitOps door, as an environment does: a temporary copy of the staging overlay
(tests/k8s/e2e_kind.py `build_overlay`) is applied with `kubectl apply -k`, and each step rewrites its
desired.yaml and applies again. Three registered versions: v1 (the champion), v2 (good), v3 (garbage:
shuffled labels).

Needs Docker, kind, helm and kubectl, and network access for the add-on charts; it skips with one line
where any is missing, and is not part of `make test` (marker `e2e`). The skip decision and the overlay the
e2e applies are tested here without the marker, so `make test` proves the e2e cannot pass silently on a
machine that cannot run it, nor apply objects the chart does not render.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_kind import (
    ADMIN_PASSWORD,
    CLUSTER,
    E2E_DIR,
    NAMESPACE,
    RELEASE,
    build_and_load_images,
    build_overlay,
    install_gateway,
    install_mlflow,
    install_prometheus,
    kind_cluster,
    kubectl,
    missing_prerequisite,
    port_forward,
    set_desired,
    sh,
    wait_for,
)
from k8s_tooling import env_of, load_documents, named, run, tool
from mlflow import MlflowClient

MODEL = "plinth-classifier"
ENVIRONMENT = "staging"
MLFLOW_LOCAL = "http://localhost:5000"  # MLflow's --allowed-hosts admits localhost:5000
RETRY_ANNOTATION = "plinth.dev/retry"
# Phases of the controller's record while a rollout runs (serving/rollout/core/state.py).
RUNNING = {"progressing", "promoting"}
ROLLOUT_TIMEOUT_S = 600


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
class Names:
    """The names the chart gives the base's objects (helm/plinth-serving/templates/_helpers.tpl)."""

    fullname: str = RELEASE

    @property
    def route(self) -> str:
        return self.fullname

    @property
    def stable(self) -> str:
        return f"{self.fullname}-stable"

    @property
    def canary(self) -> str:
        return f"{self.fullname}-canary"

    @property
    def controller(self) -> str:
        return f"{self.fullname}-rollout"

    @property
    def state(self) -> str:
        return f"{self.fullname}-rollout-state"


NAMES = Names()


def render_overlay(overlay: Path) -> list[dict[str, Any]]:
    result = run([tool("kubectl"), "kustomize", str(overlay)])
    assert result.returncode == 0, result.stderr
    return load_documents(result.stdout)


def test_the_e2e_overlay_is_the_staging_overlay_on_the_e2e_base(tmp_path: Path) -> None:
    """Without a cluster: what the e2e applies has the names it addresses and Git's desired version."""
    overlay = build_overlay(tmp_path / "gitops")
    set_desired(overlay, "1")
    objects = render_overlay(overlay)
    route = named(objects, "HTTPRoute", NAMES.route)
    assert [ref["name"] for rule in route["spec"]["rules"] for ref in rule["backendRefs"]] == [
        NAMES.stable,
        NAMES.canary,
    ]
    for name in (NAMES.stable, NAMES.canary):
        named(objects, "Service", name)
    canary = named(objects, "Deployment", NAMES.canary)
    assert env_of(canary["spec"]["template"]["spec"]["containers"][0])["PLINTH_MODEL_VERSION"]["value"] == "1"
    stable = named(objects, "Deployment", NAMES.stable)["spec"]["template"]["spec"]["containers"][0]
    assert env_of(stable)["PLINTH_MODEL_VERSION"]["valueFrom"]["configMapKeyRef"]["name"] == NAMES.state
    controller = named(objects, "Deployment", NAMES.controller)["spec"]["template"]["spec"]["containers"][0]
    assert controller["command"][controller["command"].index("--state-configmap") + 1] == NAMES.state
    assert env_of(controller)["PLINTH_ENVIRONMENT"]["value"] == ENVIRONMENT
    analysis = yaml.safe_load(named(objects, "ConfigMap", NAMES.controller)["data"]["analysis.yaml"])
    assert analysis["interval"] == "15s", "the e2e values (fast analysis) reach the base"
    assert all(obj["metadata"]["labels"]["plinth.dev/environment"] == ENVIRONMENT for obj in objects)
    set_desired(overlay, "2")
    canary = named(render_overlay(overlay), "Deployment", NAMES.canary)
    assert env_of(canary["spec"]["template"]["spec"]["containers"][0])["PLINTH_MODEL_VERSION"]["value"] == "2"


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


def test_failed_requests_beyond_the_analysis_tolerance_fail_the_e2e() -> None:
    assert tolerated_failed_share() == pytest.approx(0.05)
    assert_served({"ok": 95, "failed": 5}, "at the bound")
    with pytest.raises(AssertionError, match="6 of 100 failed"):
        assert_served({"ok": 94, "failed": 6}, "over the bound")
    with pytest.raises(AssertionError, match="no request answered"):
        assert_served({"ok": 0, "failed": 3}, "nothing served")


# --- the cluster side ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """The controller's state ConfigMap as read from the cluster."""

    stable_version: str | None
    status: dict[str, Any]
    annotations: dict[str, str]

    @property
    def phase(self) -> str:
        return str(self.status.get("phase", ""))


def record() -> Record | None:
    """Return the controller's record, None before it has created it."""
    result = kubectl("get", "configmap", NAMES.state, "-n", NAMESPACE, "-o", "json", check=False)
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    configmap = json.loads(result.stdout)
    data = configmap.get("data") or {}
    return Record(
        data.get("stableVersion"),
        json.loads(data.get("status") or "{}"),
        configmap["metadata"].get("annotations") or {},
    )


def settled() -> Record:
    """Wait until the record exists and no rollout runs; return it."""
    found: list[Record] = []

    def idle() -> bool:
        current = record()
        found[:] = [current] if current else []
        return current is not None and current.phase not in RUNNING

    wait_for(idle, timeout=ROLLOUT_TIMEOUT_S, what="the controller's record to show no rollout running", every=5)
    return found[0]


def apply_desired(overlay: Path, version: str) -> None:
    """Git now desires `version`: rewrite desired.yaml and `kubectl apply -k` the overlay."""
    set_desired(overlay, version)
    kubectl("apply", "-k", str(overlay))


def weights() -> dict[str, int]:
    route = json.loads(kubectl("get", "httproute", NAMES.route, "-n", NAMESPACE, "-o", "json").stdout)
    return {ref["name"]: int(ref["weight"]) for ref in route["spec"]["rules"][0]["backendRefs"]}


def canary_replicas() -> int:
    return int(kubectl("get", "deploy", NAMES.canary, "-n", NAMESPACE, "-o", "jsonpath={.spec.replicas}").stdout)


def stable_pods_serve() -> set[str]:
    """Return the PLINTH_MODEL_VERSION each stable pod's container actually runs with (after a rollout)."""
    kubectl("rollout", "status", f"deploy/{NAMES.stable}", "-n", NAMESPACE, "--timeout=600s", timeout=660)
    pods = kubectl(
        "get",
        "pods",
        "-n",
        NAMESPACE,
        "-l",
        "plinth.dev/track=stable",
        "--field-selector=status.phase=Running",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ).stdout.split()
    assert pods, "no stable pod running"
    script = "import os; print(os.environ.get('PLINTH_MODEL_VERSION', ''))"
    return {
        kubectl("exec", "-n", NAMESPACE, pod, "-c", "serving", "--", "python", "-c", script).stdout.strip()
        for pod in pods
    }


def assert_idle_on(stable: str, state: Record) -> None:
    """The environment serves `stable` on the stable track alone: record, pods, route, canary, registry."""
    assert state.stable_version == stable
    assert state.phase not in RUNNING
    template = r"jsonpath={.spec.template.metadata.annotations.plinth\.dev/served-version}"
    served = kubectl("get", "deploy", NAMES.stable, "-n", NAMESPACE, "-o", template).stdout
    assert served == stable, "the controller rolled the stable out for the version it records"
    assert stable_pods_serve() == {stable}
    assert weights() == {NAMES.stable: 100, NAMES.canary: 0}
    wait_for(lambda: canary_replicas() == 0, timeout=120, what="the canary to be scaled to 0")


def rollout_tag(client: MlflowClient, version: str, key: str) -> str | None:
    return client.get_model_version(MODEL, version).tags.get(f"plinth.rollout.{ENVIRONMENT}.{key}")


def restart_controller(times: int, interval_s: float) -> None:
    """Delete the controller's pod `times` times, each time waiting for its successor and two intervals."""
    for _ in range(times):
        pod = kubectl(
            "get",
            "pods",
            "-n",
            NAMESPACE,
            "-l",
            "app.kubernetes.io/component=rollout-controller",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ).stdout
        kubectl("delete", "pod", pod, "-n", NAMESPACE, "--wait=true")
        kubectl("rollout", "status", f"deploy/{NAMES.controller}", "-n", NAMESPACE, "--timeout=300s", timeout=360)
        time.sleep(2 * interval_s)


def analysis_interval_s() -> float:
    values = yaml.safe_load((E2E_DIR / "values-e2e.yaml").read_text())
    return float(str(values["rolloutController"]["analysis"]["interval"]).removesuffix("s"))


@contextlib.contextmanager
def traffic() -> Iterator[dict[str, int]]:
    """Send held-out rows to /predict through the Gateway until the block ends; count the answers."""
    from serving.embedded.train_drill import held_out_instances

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
    """One kind cluster with the add-ons, three registered versions and the overlay folder the test applies."""

    client: MlflowClient
    overlay: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One kind cluster for the module: add-ons, the namespace with its MLflow Secret, v1-v3 registered."""
    reason = missing_prerequisite()
    if reason:
        pytest.skip(reason)
    from serving.embedded.train_drill import register_drill_model

    overlay = build_overlay(tmp_path_factory.mktemp("gitops"))
    with pytest.MonkeyPatch.context() as patch, kind_cluster():
        patch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        patch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
        build_and_load_images()
        install_gateway()
        install_prometheus()
        install_mlflow()
        with port_forward("plinth-platform", "svc/mlflow", 5000, local_port=5000):
            client = MlflowClient(tracking_uri=MLFLOW_LOCAL, registry_uri=MLFLOW_LOCAL)
            versions = [
                register_drill_model(MLFLOW_LOCAL, MODEL, seed=1, alias="champion"),
                register_drill_model(MLFLOW_LOCAL, MODEL, seed=2),
                register_drill_model(MLFLOW_LOCAL, MODEL, seed=3, shuffle_labels=True),
            ]
            assert versions == ["1", "2", "3"], "a fresh registry numbers the drill models 1, 2, 3"
            kubectl("create", "namespace", NAMESPACE)
            # The base's two login Secrets, both the admin here; tests/test_registry_logins.py checks the grants.
            for secret in ("mlflow-reader", "mlflow-controller"):
                kubectl(
                    "-n",
                    NAMESPACE,
                    "create",
                    "secret",
                    "generic",
                    secret,
                    "--from-literal=username=admin",
                    f"--from-literal=password={ADMIN_PASSWORD}",
                )
            yield Stack(client, overlay)
    assert CLUSTER not in sh("kind", "get", "clusters").stdout.split()


def wait_finished(client: MlflowClient, version: str) -> str:
    wait_for(
        lambda: rollout_tag(client, version, "status") in {"promoted", "rolled_back"},
        timeout=ROLLOUT_TIMEOUT_S,
        what=f"the rollout of v{version} to finish",
        every=5,
    )
    return str(rollout_tag(client, version, "status"))


def rollout_starts_until(condition: Any, timeout: float) -> set[float]:
    """Poll the record until `condition()` holds; return every rollout start time (`started_at`) seen."""
    starts: set[float] = set()

    def observe() -> bool:
        current = record()
        if current is not None and current.status.get("started_at"):
            starts.add(float(current.status["started_at"]))
        return bool(condition())

    wait_for(observe, timeout=timeout, what="the retried rollout", every=3)
    return starts


def stable_version() -> str | None:
    current = record()
    return current.stable_version if current else None


@pytest.mark.e2e
def test_git_desires_the_controller_rolls_out_and_restarts_start_nothing(stack: Stack) -> None:
    client, overlay = stack.client, stack.overlay
    interval = analysis_interval_s()

    # 1. Git desires v1, the champion: the controller initializes its record and the stable serves v1.
    apply_desired(overlay, "1")
    kubectl("rollout", "status", f"deploy/{NAMES.controller}", "-n", NAMESPACE, "--timeout=600s", timeout=660)
    wait_for(lambda: stable_version() == "1", timeout=600, what="the record's stableVersion 1")
    assert_idle_on("1", settled())

    # 2. Git desires v2 (good): rolled out under traffic, promoted; the stable serves v2, route back to 100/0.
    with traffic() as counts:
        apply_desired(overlay, "2")
        assert wait_finished(client, "2") == "promoted"
        state = settled()
    assert_served(counts, "good canary")
    assert_idle_on("2", state)
    assert client.get_model_version_by_alias(MODEL, f"serving-{ENVIRONMENT}").version == "2"

    # 3. Three controller restarts start no rollout: the record is untouched, v2's rollout not begun again.
    before, started = record(), rollout_tag(client, "2", "started_at")
    with traffic() as counts:
        restart_controller(3, interval)
    assert_served(counts, "controller restarts")
    assert record() == before
    assert rollout_tag(client, "2", "started_at") == started
    assert_idle_on("2", settled())

    # 4. Git desires v3 (garbage): rolled back; the stable still serves v2 and the registry says so.
    with traffic() as counts:
        apply_desired(overlay, "3")
        assert wait_finished(client, "3") == "rolled_back"
        state = settled()
    assert_served(counts, "garbage canary")
    assert_idle_on("2", state)
    assert client.get_model_version_by_alias(MODEL, f"serving-{ENVIRONMENT}").version == "2"

    # 5. Git still desires v3, but two restarts do not retry it: a rolled-back version stays rolled back.
    before, started = record(), rollout_tag(client, "3", "started_at")
    restart_controller(2, interval)
    assert record() == before
    assert rollout_tag(client, "3", "started_at") == started
    assert rollout_tag(client, "3", "status") == "rolled_back"

    # 6. A retry request starts exactly one new rollout of v3 (rolled back again: it is still garbage).
    assert before is not None
    first = {float(before.status["started_at"])} if before.status.get("started_at") else set()
    kubectl("annotate", "configmap", NAMES.state, "-n", NAMESPACE, f"{RETRY_ANNOTATION}=3", "--overwrite")
    with traffic() as counts:
        seen = rollout_starts_until(lambda: rollout_tag(client, "3", "started_at") != started, timeout=300)
        seen |= rollout_starts_until(
            lambda: rollout_tag(client, "3", "status") == "rolled_back" and (record() or before).phase not in RUNNING,
            timeout=ROLLOUT_TIMEOUT_S,
        )
        hold_until = time.monotonic() + 3 * interval  # a second rollout would have started by then
        seen |= rollout_starts_until(lambda: time.monotonic() >= hold_until, timeout=3 * interval + 30)
    assert_served(counts, "retried garbage canary")
    after = settled()
    assert len(seen - first) == 1, f"one new rollout after the retry; starts seen: {sorted(seen - first)}"
    assert RETRY_ANNOTATION not in after.annotations, "the controller consumes the retry request"
    assert rollout_tag(client, "3", "status") == "rolled_back"
    assert_idle_on("2", after)
