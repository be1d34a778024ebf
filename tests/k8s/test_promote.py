"""`python -m serving.gitops.promote` against a temporary Git repository and a real MLflow registry.

What moves is what staging SERVES (the registry alias `serving-staging`, set by its rollout controller on
promotion), written as prod's desired version (desired.yaml, the canary Deployment).

kubectl is real throughout: `kustomize`, and `diff` and `apply` (server-side, as promote runs them) against the
API server stand-in over HTTPS (tests/apiserver, the `standin` fixture), which holds prod as an earlier
promotion left it; the tests assert what the cluster then holds. A cluster that is down is the stand-in
stopped; a render failure is a broken overlay. The tests of the default registry run the command the way a
user does: a subprocess with a scrubbed environment (PATH, HOME, LANG, PLINTH_HOME).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_tooling import ROOT, tool
from mlflow import MlflowClient

from components.common.state import local_tracking_uri
from serving.gitops import promote, registry
from tests.apiserver.fixtures import Standin
from tests.apiserver.resources import BY_KIND, DEPLOYMENT, HTTPROUTE

MODEL = "plinth-classifier"
DESIRED = Path("manifests/overlays/prod/desired.yaml")
STAGING_DESIRED = Path("manifests/overlays/staging/desired.yaml")
SERVING_STAGING = "serving-staging"
PROD = Path("manifests/overlays/prod")
CANARY = "plinth-classifier-canary"


@pytest.fixture(scope="module")
def plinth_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PLINTH_HOME whose embedded registry holds: in staging v2 promoted (and served), v3 rolled back,
    v4 rolling, v5 no tags."""
    root = tmp_path_factory.mktemp("plinth-home")
    uri = local_tracking_uri(root)
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
    client.set_registered_model_alias(MODEL, SERVING_STAGING, "2")
    return root


@pytest.fixture(scope="module")
def tracking_uri(plinth_home: Path) -> str:
    """The same registry named explicitly, as `--tracking-uri` takes it."""
    return local_tracking_uri(plinth_home)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A GitOps repository holding this project's manifests (staging desires v2, prod desires v1)."""
    repo = tmp_path / "gitops"
    shutil.copytree(ROOT / "manifests", repo / "manifests")
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "config", "user.email", "ci@plinth.dev")
    git(repo, "config", "user.name", "plinth ci")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "initial")
    return repo


def holding_prod(repo: Path, standin: Standin, monkeypatch: pytest.MonkeyPatch) -> Standin:
    """The stand-in holding prod as an earlier promotion applied it (v1), reached through $KUBECONFIG."""
    command = ("apply", "--server-side", f"--field-manager={promote.FIELD_MANAGER}", "-k", str(repo / PROD))
    applied = standin.kubectl(*command)
    assert applied.returncode == 0, applied.stderr
    assert canary_version(standin) == "1"
    monkeypatch.setenv("KUBECONFIG", str(standin.kubeconfig))
    standin.http.paths.clear()
    return standin


@pytest.fixture
def cluster(repo: Path, standin: Standin, monkeypatch: pytest.MonkeyPatch) -> Standin:
    """The stand-in holding prod (v1) as the kubeconfig's current cluster."""
    return holding_prod(repo, standin, monkeypatch)


def canary_version(cluster: Standin) -> str:
    """The PLINTH_MODEL_VERSION of prod's canary Deployment as the cluster holds it."""
    deployment = cluster.api.store.get(DEPLOYMENT, "plinth", CANARY)
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return str(next(item["value"] for item in env if item["name"] == "PLINTH_MODEL_VERSION"))


def holds(stored: Any, rendered: Any) -> bool:
    """Whether a stored value carries every rendered field with its value (defaults may add fields)."""
    if isinstance(rendered, dict):
        return isinstance(stored, dict) and all(k in stored and holds(stored[k], v) for k, v in rendered.items())
    if isinstance(rendered, list):
        return isinstance(stored, list) and len(stored) == len(rendered) and all(map(holds, stored, rendered))
    return bool(stored == rendered)


@contextlib.contextmanager
def staging_serves(uri: str, version: str | None) -> Iterator[None]:
    """Point `serving-staging` at `version` (None: remove it) for one test, then back at v2."""
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if version is None:
        client.delete_registered_model_alias(MODEL, SERVING_STAGING)
    else:
        client.set_registered_model_alias(MODEL, SERVING_STAGING, version)
    try:
        yield
    finally:
        client.set_registered_model_alias(MODEL, SERVING_STAGING, "2")


def set_staging_desired(repo: Path, version: str) -> None:
    path = repo / STAGING_DESIRED
    path.write_text(path.read_text().replace('value: "2"', f'value: "{version}"'))
    git(repo, "commit", "--quiet", "-am", f"staging desires v{version}")


def desired_in(repo: Path, path: Path = DESIRED) -> str:
    return next(line for line in (repo / path).read_text().splitlines() if "value:" in line).split('"')[1]


def run_promote(repo: Path, uri: str, *extra: str) -> int:
    return promote.main(["--from", "staging", "--to", "prod", "--repo", str(repo), "--tracking-uri", uri, *extra])


def test_promotion_moves_only_prods_desired_version_commits_evidence_and_shows_the_diff(
    repo: Path, tracking_uri: str, cluster: Standin, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (repo / DESIRED).read_text()
    assert run_promote(repo, tracking_uri) == 0
    assert desired_in(repo) == "2"
    assert (repo / DESIRED).read_text() == before.replace('value: "1"', 'value: "2"')
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == [str(DESIRED)]
    message = git(repo, "log", "-1", "--format=%B")
    assert message.startswith("promote plinth-classifier v2 staging -> prod")
    assert "prod: v1 -> v2 (manifests/overlays/prod/desired.yaml)" in message
    assert "Source: staging serves v2 (registry alias serving-staging)" in message
    assert "plinth.rollout.staging.status=promoted" in message
    assert "all checks passed at 100%" in message
    assert git(repo, "status", "--porcelain") == ""
    writes = [path for method, path in cluster.http.paths if method in ("PATCH", "POST", "PUT", "DELETE")]
    assert writes, "kubectl diff asked the cluster"
    assert all("dryRun=All" in path for path in writes), "kubectl diff only dry-runs"
    assert all("fieldManager=plinth-promote" in path for path in writes)
    assert canary_version(cluster) == "1", "without --apply the cluster is left to the GitOps agent"
    out = capsys.readouterr().out
    assert '-          value: "1"' in out
    assert '+          value: "2"' in out
    assert "promoted plinth-classifier v2 staging -> prod" in out


def test_apply_lands_the_promoted_overlay_in_the_cluster_defaulted_and_owned_by_promote(
    repo: Path, tracking_uri: str, cluster: Standin, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_promote(repo, tracking_uri, "--apply") == 0
    assert "deployment.apps/plinth-classifier-canary serverside-applied" in capsys.readouterr().out
    assert canary_version(cluster) == "2"
    canary = cluster.api.store.get(DEPLOYMENT, "plinth", CANARY)
    assert canary["metadata"]["generation"] == 2, "the template changed once"
    assert canary["spec"]["strategy"]["type"] == "RollingUpdate", "stored with the API server's defaults"
    assert canary["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] == "/dev/termination-log"
    owners = {e["manager"]: e["operation"] for e in canary["metadata"]["managedFields"]}
    assert owners == {"plinth-promote": "Apply"}
    rendered = list(
        yaml.safe_load_all(
            subprocess.run(
                [tool("kubectl"), "kustomize", str(repo / PROD)], capture_output=True, text=True, check=True
            ).stdout
        )
    )
    assert len(rendered) > 20
    for obj in rendered:
        resource = BY_KIND[(obj["apiVersion"], obj["kind"])]
        namespace = obj["metadata"].get("namespace", "") if resource.namespaced else ""
        stored = cluster.api.store.get(resource, namespace, obj["metadata"]["name"])
        assert holds({k: v for k, v in stored.items() if k != "status"}, obj), (
            f"{obj['kind']} {obj['metadata']['name']}"
        )
    diff = cluster.kubectl("diff", "--server-side", "--field-manager=plinth-promote", "-k", str(repo / PROD))
    assert diff.returncode == 0, "the cluster now matches Git: " + diff.stdout + diff.stderr


def test_apply_mid_rollout_takes_the_route_back_as_flux_does_and_lands_the_new_desired_version(
    repo: Path, tracking_uri: str, cluster: Standin, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mid-rollout the controller has moved the route's weights: the promotion still lands whole.

    The new desired version cancels that rollout anyway; the route is Git's again (forced, as Flux forces),
    and the controller takes it back with its next write.
    """
    route_path = "/apis/gateway.networking.k8s.io/v1/namespaces/plinth/httproutes/plinth-classifier"
    route = cluster.api.store.get(HTTPROUTE, "plinth", "plinth-classifier")
    # As the controller writes them: every rule of the route (prediction API, Open Inference Protocol) alike.
    rules = [
        {**rule, "backendRefs": [{**ref, "weight": 90 if ref["weight"] else 10} for ref in rule["backendRefs"]]}
        for rule in route["spec"]["rules"]
    ]
    patch = {"spec": {"rules": rules}}
    status, _ = cluster.api.handle(
        "PATCH",
        route_path,
        {"fieldManager": "plinth-rollout"},
        {"Content-Type": "application/merge-patch+json"},
        json.dumps(patch).encode(),
        user="system:serviceaccount:plinth:plinth-classifier-rollout",
    )
    assert status == 200
    assert run_promote(repo, tracking_uri, "--apply") == 0, capsys.readouterr()
    assert desired_in(repo) == "2"
    assert canary_version(cluster) == "2", "no half-applied promotion"
    stored = cluster.api.store.get(HTTPROUTE, "plinth", "plinth-classifier")
    for rule in stored["spec"]["rules"]:
        assert sorted(r["weight"] for r in rule["backendRefs"]) == [0, 100], "Git's route"
    owners = {entry["manager"] for entry in stored["metadata"]["managedFields"]}
    assert "plinth-promote" in owners


def test_promoting_again_is_a_no_op(
    repo: Path, tracking_uri: str, cluster: Standin, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_promote(repo, tracking_uri) == 0
    head = git(repo, "rev-parse", "HEAD")
    assert run_promote(repo, tracking_uri) == 0
    assert git(repo, "rev-parse", "HEAD") == head
    assert "prod already desires plinth-classifier v2, what staging serves: nothing to promote" in (
        capsys.readouterr().out
    )


def test_what_staging_serves_moves_not_what_its_overlay_desires(
    repo: Path, tracking_uri: str, cluster: Standin, capsys: pytest.CaptureFixture[str]
) -> None:
    """Staging desires v4 (still rolling out there) while its stable serves v2: prod gets v2."""
    set_staging_desired(repo, "4")
    assert run_promote(repo, tracking_uri) == 0
    assert desired_in(repo) == "2"
    assert desired_in(repo, STAGING_DESIRED) == "4", "the source overlay is never touched"
    assert "promoted plinth-classifier v2 staging -> prod" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("3", "plinth.rollout.staging.status=rolled_back (success-rate 0.91 < 0.99)"),
        ("4", "plinth.rollout.staging.status=in_progress"),
        ("5", "has no plinth.rollout.staging.status tag"),
    ],
)
def test_refuses_a_version_whose_staging_rollout_did_not_succeed(
    repo: Path,
    tracking_uri: str,
    capsys: pytest.CaptureFixture[str],
    version: str,
    message: str,
) -> None:
    head = git(repo, "rev-parse", "HEAD")
    with staging_serves(tracking_uri, version):
        assert run_promote(repo, tracking_uri) == 1
    assert message in capsys.readouterr().err
    assert desired_in(repo) == "1"
    assert git(repo, "rev-parse", "HEAD") == head


def test_refuses_when_staging_has_promoted_nothing_yet(
    repo: Path, tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    head = git(repo, "rev-parse", "HEAD")
    with staging_serves(tracking_uri, None):
        assert run_promote(repo, tracking_uri) == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err], "one line"
    assert err.startswith("promote: staging has not promoted anything yet: plinth-classifier has no alias serving-")
    assert err.endswith(f"[registry: {tracking_uri} (--tracking-uri)]")
    assert desired_in(repo) == "1"
    assert git(repo, "rev-parse", "HEAD") == head


def test_overlays_of_two_different_models_are_refused(
    repo: Path, tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = repo / DESIRED
    path.write_text(path.read_text() + '            - name: PLINTH_MODEL_NAME\n              value: "other-model"\n')
    git(repo, "commit", "--quiet", "-am", "prod serves another model")
    assert run_promote(repo, tracking_uri) == 1
    assert "staging deploys model plinth-classifier but prod other-model" in capsys.readouterr().err


def test_an_unknown_model_is_refused_naming_the_registry(
    repo: Path, tracking_uri: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    empty = local_tracking_uri(tmp_path / "other-home")
    (tmp_path / "other-home").mkdir()
    MlflowClient(tracking_uri=empty, registry_uri=empty).search_registered_models()
    assert run_promote(repo, empty) == 1
    err = capsys.readouterr().err
    assert "cannot read model plinth-classifier from the registry" in err
    assert f"[registry: {empty} (--tracking-uri)]" in err


def test_refuses_a_dirty_working_tree(repo: Path, tracking_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "notes.txt").write_text("uncommitted")
    assert run_promote(repo, tracking_uri) == 1
    assert "not clean" in capsys.readouterr().err
    assert desired_in(repo) == "1"


def test_a_desired_version_that_no_longer_renders_is_put_back_and_not_committed(
    repo: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (repo / DESIRED).read_text()
    head = git(repo, "rev-parse", "HEAD")
    real_render = promote.overlay.render
    renders: list[Path] = []

    def render_then_fail(kubectl: str, directory: Path) -> str:
        renders.append(directory)
        if len(renders) == 3:  # the check after the rewrite
            assert desired_in(repo) == "2", "the new desired version is in place while it is checked"
            raise promote.overlay.OverlayError("kubectl kustomize failed: simulated")
        return real_render(kubectl, directory)

    monkeypatch.setattr(promote.overlay, "render", render_then_fail)
    assert run_promote(repo, tracking_uri) == 1
    assert (repo / DESIRED).read_text() == before
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == ""
    assert sorted(path.name for path in (repo / DESIRED).parent.iterdir()) == [
        "desired.yaml",
        "environment.yaml",
        "kustomization.yaml",
    ]


def test_a_render_failure_reported_by_kubectl_is_refused(repo: Path, tracking_uri: str, capsys) -> None:
    kustomization = repo / PROD / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text().replace("  - ../../base\n", "  - ../../base\n  - missing.yaml\n")
    )
    git(repo, "commit", "--quiet", "-am", "prod lists a file that is not there")
    assert run_promote(repo, tracking_uri) == 1
    assert "missing.yaml" in capsys.readouterr().err
    assert desired_in(repo) == "1"


def test_no_cluster_is_reported_and_the_commit_stands(repo: Path, tracking_uri: str, cluster: Standin, capsys) -> None:
    address = cluster.http.url.removeprefix("https://")
    cluster.http.stop()
    assert run_promote(repo, tracking_uri) == 0
    out = capsys.readouterr().out
    assert f"kubectl diff: the cluster could not be compared (The connection to the server {address} was refused" in out
    assert desired_in(repo) == "2"
    assert run_promote(repo, tracking_uri, "--apply") == 0  # already promoted: nothing to apply


def test_apply_without_a_cluster_fails_after_the_commit(
    repo: Path, tracking_uri: str, cluster: Standin, capsys
) -> None:
    cluster.http.stop()
    assert run_promote(repo, tracking_uri, "--apply") == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err], "one line"
    assert "--apply needs a cluster that answers the diff" in err
    assert canary_version(cluster) == "1"
    assert desired_in(repo) == "2"
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


def test_a_missing_overlay_is_bad_input(repo: Path, tracking_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / DESIRED).unlink()
    assert run_promote(repo, tracking_uri) == 2
    assert "unknown environment 'prod'" in capsys.readouterr().err


def promote_as_typed(repo: Path, home: Path, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI without --tracking-uri in a scrubbed environment: what `make promote` does in a bare shell."""
    (tmp_path / "user-home").mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "user-home"),  # no ~/.kube/config: the real kubectl finds no cluster
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PLINTH_HOME": str(home),
        **extra,
    }
    argv = [sys.executable, "-m", "serving.gitops.promote", "--from", "staging", "--to", "prod", "--repo", str(repo)]
    return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT, env=env, timeout=120)


def test_without_tracking_uri_the_embedded_registry_of_plinth_home_is_read(
    repo: Path, plinth_home: Path, tmp_path: Path
) -> None:
    result = promote_as_typed(repo, plinth_home, tmp_path)
    assert result.returncode == 0, result.stderr
    where = f"{local_tracking_uri(plinth_home)} (embedded registry, $PLINTH_HOME)"
    assert "promoted plinth-classifier v2 staging -> prod" in result.stdout
    assert f"registry: {where}" in result.stdout
    assert "kubectl diff: the cluster could not be compared" in result.stdout
    assert desired_in(repo) == "2"
    assert f"Registry: {where}" in git(repo, "log", "-1", "--format=%B")


def test_without_any_registry_the_refusal_names_plinth_home_and_creates_nothing(repo: Path, tmp_path: Path) -> None:
    empty_home = tmp_path / "fresh-home"
    empty_home.mkdir()
    result = promote_as_typed(repo, empty_home, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], "one line"
    assert f"no registry at {empty_home / 'mlflow.db'}" in result.stderr
    assert "[registry: sqlite:///" in result.stderr
    assert list(empty_home.iterdir()) == [], "reading the evidence must not create an empty registry"
    assert desired_in(repo) == "1"


def test_mlflow_tracking_uri_wins_over_plinth_home(repo: Path, tracking_uri: str, tmp_path: Path) -> None:
    empty_home = tmp_path / "fresh-home"
    empty_home.mkdir()
    result = promote_as_typed(repo, empty_home, tmp_path, MLFLOW_TRACKING_URI=tracking_uri)
    assert result.returncode == 0, result.stderr
    assert f"registry: {tracking_uri} ($MLFLOW_TRACKING_URI)" in result.stdout
    assert desired_in(repo) == "2"


def test_checks_run_in_order_bad_arguments_then_dirty_tree_then_registry(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty_home = tmp_path / "fresh-home"
    empty_home.mkdir()
    (repo / "notes.txt").write_text("uncommitted")
    dirty = promote_as_typed(repo, empty_home, tmp_path)
    assert dirty.returncode == 1
    clean_first = f"promote: working tree of {repo} is not clean (1 changed paths): commit or stash first"
    assert dirty.stderr.strip() == clean_first
    assert promote.main(["--from", "staging", "--to", "qa", "--repo", str(repo)]) == 2
    assert "unknown environment 'qa'" in capsys.readouterr().err


def test_a_password_in_the_registry_uri_is_never_printed() -> None:
    where = registry.Registry("https://ci:s3cret@mlflow.example:5000/path", "--tracking-uri")
    assert where.describe() == "https://***@mlflow.example:5000/path (--tracking-uri)"
    assert registry.redact("sqlite:////tmp/x/mlflow.db") == "sqlite:////tmp/x/mlflow.db"


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
    assert "kubectl diff: the cluster could not be compared" in out
    assert "connection refused" in out
    assert desired_in(repo) == "2"
