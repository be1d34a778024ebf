"""`python -m serving.gitops.promote` against a temporary Git repository and a real MLflow registry.

kubectl is real for `kustomize`; `diff` and `apply` need a cluster, so a fake kubectl on PATH records those
calls (the boundary) and forwards everything else to the real binary.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from k8s_tooling import ROOT, tool
from mlflow import MlflowClient

from serving.gitops import promote

MODEL = "plinth-classifier"
PIN = Path("manifests/overlays/prod/pin.yaml")
STAGING_PIN = Path("manifests/overlays/staging/pin.yaml")
FAKE_KUBECTL = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_KUBECTL_LOG"
case "$1" in
  kustomize)
    if [[ -n "${FAKE_KUSTOMIZE_FAIL_FOR:-}" && "$2" == *"$FAKE_KUSTOMIZE_FAIL_FOR"* ]]; then
      echo "error: simulated render failure" >&2; exit 1
    fi
    exec "$REAL_KUBECTL" "$@" ;;
  diff)
    if [[ "${FAKE_NO_CLUSTER:-}" == 1 ]]; then
      echo "The connection to the server localhost:8080 was refused" >&2; exit 2
    fi
    echo "-  value: \\"1\\""; echo "+  value: \\"2\\""; exit 1 ;;
  apply) echo "deployment.apps/plinth-classifier-stable configured" ;;
esac
"""


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A registry: in staging v2 was promoted, v3 rolled back, v4 is rolling out, v5 has no tags."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(MODEL)
    (root / "model").mkdir()
    for _ in range(5):
        client.create_model_version(MODEL, source=str(root / "model"))
    staging = {
        "2": ("promoted", "all checks passed at 100%"),
        "3": ("rolled_back", "success-rate 0.91 < 0.99"),
        "4": ("in_progress", "step 25%"),
    }
    for version, (status, reason) in staging.items():
        client.set_model_version_tag(MODEL, version, "plinth.rollout.staging.status", status)
        client.set_model_version_tag(MODEL, version, "plinth.rollout.staging.reason", reason)
        client.set_model_version_tag(MODEL, version, "plinth.rollout.staging.finished_at", "2026-11-21T23:00:00Z")
    return uri


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A GitOps repository holding this project's manifests (staging pins v2, prod pins v1)."""
    repo = tmp_path / "gitops"
    shutil.copytree(ROOT / "manifests", repo / "manifests")
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "config", "user.email", "ci@plinth.dev")
    git(repo, "config", "user.name", "plinth ci")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "initial")
    return repo


@pytest.fixture
def kubectl_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the fake kubectl first on PATH and return the file it logs its arguments to."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    fake = bin_dir / "kubectl"
    fake.write_text(FAKE_KUBECTL)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "kubectl.log"
    log.touch()
    monkeypatch.setenv("REAL_KUBECTL", tool("kubectl"))
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(log))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def set_staging_pin(repo: Path, version: str) -> None:
    path = repo / STAGING_PIN
    path.write_text(path.read_text().replace('value: "2"', f'value: "{version}"'))
    git(repo, "commit", "--quiet", "-am", f"staging runs v{version}")


def pinned(repo: Path, pin: Path = PIN) -> str:
    return next(line for line in (repo / pin).read_text().splitlines() if "value:" in line).split('"')[1]


def run_promote(repo: Path, uri: str, *extra: str) -> int:
    return promote.main(["--from", "staging", "--to", "prod", "--repo", str(repo), "--tracking-uri", uri, *extra])


def test_promotion_moves_only_the_prod_pin_commits_evidence_and_shows_the_diff(
    repo: Path, tracking_uri: str, kubectl_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (repo / PIN).read_text()
    assert run_promote(repo, tracking_uri) == 0
    assert pinned(repo) == "2"
    assert (repo / PIN).read_text() == before.replace('value: "1"', 'value: "2"')
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == [str(PIN)]
    message = git(repo, "log", "-1", "--format=%B")
    assert message.startswith("promote plinth-classifier v2 staging -> prod")
    assert "prod: v1 -> v2" in message
    assert "plinth.rollout.staging.status=promoted" in message
    assert "all checks passed at 100%" in message
    assert git(repo, "status", "--porcelain") == ""
    calls = kubectl_log.read_text().splitlines()
    assert f"diff -k {repo / 'manifests/overlays/prod'}" in calls
    assert not [call for call in calls if call.startswith("apply")]
    out = capsys.readouterr().out
    assert '+  value: "2"' in out
    assert "promoted plinth-classifier v2 staging -> prod" in out


def test_apply_runs_kubectl_apply_on_the_target_overlay(repo: Path, tracking_uri: str, kubectl_log: Path) -> None:
    assert run_promote(repo, tracking_uri, "--apply") == 0
    assert f"apply -k {repo / 'manifests/overlays/prod'}" in kubectl_log.read_text().splitlines()


def test_promoting_again_is_a_no_op(repo: Path, tracking_uri: str, kubectl_log: Path) -> None:
    assert run_promote(repo, tracking_uri) == 0
    head = git(repo, "rev-parse", "HEAD")
    assert run_promote(repo, tracking_uri) == 0
    assert git(repo, "rev-parse", "HEAD") == head


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("3", "plinth.rollout.staging.status=rolled_back (success-rate 0.91 < 0.99)"),
        ("4", "plinth.rollout.staging.status=in_progress"),
        ("5", "has no plinth.rollout.staging.status tag"),
        ("9", "cannot read version 9"),
    ],
)
def test_refuses_a_version_whose_staging_rollout_did_not_succeed(
    repo: Path,
    tracking_uri: str,
    kubectl_log: Path,
    capsys: pytest.CaptureFixture[str],
    version: str,
    message: str,
) -> None:
    set_staging_pin(repo, version)
    head = git(repo, "rev-parse", "HEAD")
    assert run_promote(repo, tracking_uri) == 1
    assert message in capsys.readouterr().err
    assert pinned(repo) == "1"
    assert git(repo, "rev-parse", "HEAD") == head


def test_refuses_a_dirty_working_tree(
    repo: Path, tracking_uri: str, kubectl_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "notes.txt").write_text("uncommitted")
    assert run_promote(repo, tracking_uri) == 1
    assert "not clean" in capsys.readouterr().err
    assert pinned(repo) == "1"


def test_a_pin_that_no_longer_renders_is_put_back_and_not_committed(
    repo: Path, tracking_uri: str, kubectl_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (repo / PIN).read_text()
    head = git(repo, "rev-parse", "HEAD")
    real_render = promote.overlay.render
    renders: list[Path] = []

    def render_then_fail(kubectl: str, directory: Path) -> str:
        renders.append(directory)
        if len(renders) == 3:  # the check after the rewrite
            assert pinned(repo) == "2", "the new pin is in place while it is checked"
            raise promote.overlay.OverlayError("kubectl kustomize failed: simulated")
        return real_render(kubectl, directory)

    monkeypatch.setattr(promote.overlay, "render", render_then_fail)
    assert run_promote(repo, tracking_uri) == 1
    assert (repo / PIN).read_text() == before
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == ""
    assert sorted(path.name for path in (repo / PIN).parent.iterdir()) == [
        "environment.yaml",
        "kustomization.yaml",
        "pin.yaml",
    ]


def test_a_render_failure_reported_by_kubectl_is_refused(
    repo: Path, tracking_uri: str, kubectl_log: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("FAKE_KUSTOMIZE_FAIL_FOR", "overlays/prod")
    assert run_promote(repo, tracking_uri) == 1
    assert "simulated render failure" in capsys.readouterr().err
    assert pinned(repo) == "1"


def test_no_cluster_is_reported_and_the_commit_stands(
    repo: Path, tracking_uri: str, kubectl_log: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("FAKE_NO_CLUSTER", "1")
    assert run_promote(repo, tracking_uri) == 0
    assert "no cluster reachable" in capsys.readouterr().out
    assert pinned(repo) == "2"
    assert run_promote(repo, tracking_uri, "--apply") == 0  # already promoted: nothing to apply


def test_apply_without_a_cluster_fails_after_the_commit(
    repo: Path, tracking_uri: str, kubectl_log: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("FAKE_NO_CLUSTER", "1")
    assert run_promote(repo, tracking_uri, "--apply") == 1
    assert "--apply needs a reachable cluster" in capsys.readouterr().err
    assert pinned(repo) == "2"
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--from", "staging", "--to", "staging"], "name two different environments"),
        (["--from", "staging", "--to", "qa"], "unknown environment 'qa'"),
        (["--from", "dev", "--to", "prod"], "unknown environment 'dev'"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    repo: Path, tracking_uri: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert promote.main([*argv, "--repo", str(repo), "--tracking-uri", tracking_uri]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_missing_overlay_and_missing_registry_are_bad_input(
    repo: Path, tracking_uri: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / PIN).unlink()
    assert run_promote(repo, tracking_uri) == 2
    assert "unknown environment 'prod'" in capsys.readouterr().err
    git(repo, "checkout", "--quiet", "--", str(PIN))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert promote.main(["--from", "staging", "--to", "prod", "--repo", str(repo)]) == 2
    assert "--tracking-uri" in capsys.readouterr().err


def test_cli_entry_point_runs_as_a_module(repo: Path, tracking_uri: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "serving.gitops.promote", "--from", "prod", "--to", "prod"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "name two different environments" in result.stderr


def test_real_kubectl_without_a_cluster_is_reported(
    repo: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(repo / "no-kubeconfig"))
    monkeypatch.setenv("PATH", f"{os.environ['PATH']}{os.pathsep}{Path(tool('kubectl')).parent}")
    assert run_promote(repo, tracking_uri) == 0
    out = capsys.readouterr().out
    assert "kubectl diff: no cluster reachable" in out
    assert "connection refused" in out
    assert pinned(repo) == "2"
