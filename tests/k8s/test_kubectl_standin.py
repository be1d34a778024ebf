"""`make status` and `make retry` against the API server stand-in over HTTPS, typed as a person types them.

The stand-in holds prod as the overlay renders it (applied by the real kubectl, as the GitOps agent) and the
rollout controller's record, written by the controller's own identity: v2 serves, v3 was rolled back. Each
command is a subprocess reading $KUBECONFIG and a context, with nothing else wired in.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from k8s_tooling import ROOT

from serving.rollout.core.state import RETRY_ANNOTATION, Outcome, RolloutStatus, State
from tests.apiserver.fixtures import Standin
from tests.apiserver.http import ADMIN, AGENT
from tests.apiserver.resources import CONFIGMAP

NAMESPACE, RECORD = "plinth", "plinth-classifier-rollout-state"
CONTROLLER = "system:serviceaccount:plinth:plinth-classifier-rollout"


@pytest.fixture
def prod(standin: Standin) -> Standin:
    """Prod applied by the agent, and the controller's record: v2 serving, v3 rolled back."""
    applied = standin.kubectl("apply", "--server-side", "-k", str(ROOT / "manifests/overlays/prod"), context="agent")
    assert applied.returncode == 0, applied.stderr
    standin.http.tokens["controller"] = CONTROLLER
    status = RolloutStatus(phase="failed", weight=0, rejected={"3": "success-rate 0.91 < 0.99"})
    status.outcome = Outcome("3", "rolled_back", "success-rate 0.91 < 0.99", "2026-11-21T23:00:00Z", recorded=True)
    record = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": RECORD,
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/managed-by": "plinth-rollout"},  # as the controller creates it
        },
        "data": State(stable_version="2", status=status).data(),
    }
    # The scene is set by an administrator: the controller itself reaches this record only step by step (the
    # admission policy lets stableVersion move only along the record's own promotion and rollback).
    created = standin.kubectl("create", "-f", "-", context="admin", stdin=yaml.safe_dump(record))
    assert created.returncode == 0, created.stderr
    return standin


def typed(standin: Standin, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`python -m <argv>` from the project root with $KUBECONFIG and an empty $PLINTH_HOME."""
    home = tmp_path / "plinth-home"
    home.mkdir(exist_ok=True)
    env = standin.env(PLINTH_HOME=str(home), HOME=str(tmp_path))
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", *argv], capture_output=True, text=True, check=False, cwd=ROOT, env=env, timeout=180
    )


def test_status_reads_the_record_and_the_route_from_the_cluster(prod: Standin, tmp_path: Path) -> None:
    result = typed(prod, tmp_path, "serving.rollout.status", "--context", "prod=admin", "--context", "staging=agent")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("prod "))
    assert row.split()[:5] == ["prod", "v1", "v2", "-", "failed"]
    assert "v3 rolled_back 2026-11-21T23:00:00Z: success-rate 0.91 < 0.99" in row
    assert f"prod: from the cluster at {prod.http.url}" in result.stdout
    reads = [path for method, path in prod.http.paths if method == "GET" and NAMESPACE in path]
    assert f"/api/v1/namespaces/{NAMESPACE}/configmaps/{RECORD}" in reads
    assert f"/apis/gateway.networking.k8s.io/v1/namespaces/{NAMESPACE}/httproutes/plinth-classifier" in reads


def test_status_of_a_cluster_that_refuses_says_so_in_the_row(prod: Standin, tmp_path: Path) -> None:
    prod.api.deny("get", "configmaps", RECORD)
    result = typed(prod, tmp_path, "serving.rollout.status", "--context", "prod=agent")
    assert result.returncode == 0, result.stderr
    assert "prod: cluster unreachable ((403)" in result.stdout


def test_retry_annotates_the_record_as_the_person_who_asked(prod: Standin, tmp_path: Path) -> None:
    result = typed(prod, tmp_path, "serving.rollout.retry", "--environment", "prod", "--context", "admin")
    assert result.returncode == 0, result.stderr
    assert "retry of v3 requested in prod" in result.stdout
    stored = prod.api.store.get(CONFIGMAP, NAMESPACE, RECORD)
    assert stored["metadata"]["annotations"] == {RETRY_ANNOTATION: "3"}
    assert ("PATCH", f"/api/v1/namespaces/{NAMESPACE}/configmaps/{RECORD}") in prod.http.paths
    owners = {e["manager"] for e in stored["metadata"]["managedFields"]}
    assert "kubectl-create" in owners, "the controller's fields stay its own"
    assert len(owners) == 2, owners
    again = typed(
        prod, tmp_path, "serving.rollout.retry", "--environment", "prod", "--version", "2", "--context", "admin"
    )
    assert again.returncode == 1
    assert "v2 is not rolled back in this environment (rolled back: v3): nothing to retry" in again.stderr
    assert prod.api.store.get(CONFIGMAP, NAMESPACE, RECORD)["metadata"]["annotations"] == {RETRY_ANNOTATION: "3"}


def test_retry_refused_by_the_cluster_is_one_line(prod: Standin, tmp_path: Path) -> None:
    prod.api.deny("patch", "configmaps", RECORD)
    result = typed(prod, tmp_path, "serving.rollout.retry", "--environment", "prod", "--context", "agent")
    assert result.returncode == 1
    assert result.stderr.strip() == f"retry: could not annotate {NAMESPACE}/{RECORD}: 403 Forbidden"
    assert RETRY_ANNOTATION not in (
        prod.api.store.get(CONFIGMAP, NAMESPACE, RECORD)["metadata"].get("annotations") or {}
    )
    assert {ADMIN, AGENT} <= set(prod.http.tokens.values())
