"""`make promote` carries the serving image digest along with the model version when the source pins one.

Same temporary GitOps repository, real MLflow registry and fake-at-the-cluster kubectl as test_promote.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from k8s_tooling import tool
from test_promote import DESIRED, cluster, desired_in, git, plinth_home, repo, run_promote, tracking_uri

from serving.gitops import image_pin, overlay
from tests.apiserver.fixtures import Standin

__all__ = ["cluster", "plinth_home", "repo", "tracking_uri"]  # fixtures, shared with test_promote.py

DIGEST = "sha256:" + "5e" * 32
PIN = image_pin.ImagePin("registry.example.com/team/plinth-serving", "0.1.0", DIGEST)
STAGING = Path("manifests/overlays/staging")
PROD = Path("manifests/overlays/prod")


def pin_staging(repo: Path, pin: image_pin.ImagePin = PIN) -> None:
    path = repo / STAGING / image_pin.KUSTOMIZATION
    path.write_text(image_pin.rewrite_pin(path.read_text(), pin))
    git(repo, "commit", "--quiet", "-am", "staging runs my image by digest")


def prod_images(repo: Path) -> set[str]:
    return image_pin.rendered_images(overlay.render(tool("kubectl"), repo / PROD), "plinth-serving")


def test_the_staging_digest_moves_to_prod_with_the_version_in_one_commit(
    repo: Path, tracking_uri: str, cluster: Standin, capsys: pytest.CaptureFixture[str]
) -> None:
    pin_staging(repo)
    before = (repo / PROD / image_pin.KUSTOMIZATION).read_text()
    assert run_promote(repo, tracking_uri) == 0
    assert desired_in(repo) == "2"
    assert image_pin.read_pin(repo / PROD) == PIN
    assert prod_images(repo) == {f"registry.example.com/team/plinth-serving:0.1.0@{DIGEST}"}
    after = (repo / PROD / image_pin.KUSTOMIZATION).read_text()
    assert after.splitlines()[:5] == before.splitlines()[:5], "the comments stay as they were"
    changed = sorted(git(repo, "show", "--name-only", "--format=", "HEAD").split())
    assert changed == sorted([str(DESIRED), str(PROD / image_pin.KUSTOMIZATION)])
    message = git(repo, "log", "-1", "--format=%B")
    assert f"Image: prod runs registry.example.com/team/plinth-serving:0.1.0@{DIGEST}, as staging pins it" in message
    assert f"image registry.example.com/team/plinth-serving:0.1.0@{DIGEST}" in capsys.readouterr().out
    assert git(repo, "status", "--porcelain") == ""


def test_a_new_digest_alone_moves_and_then_nothing_is_left_to_promote(
    repo: Path, tracking_uri: str, cluster: Standin, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_promote(repo, tracking_uri) == 0
    assert image_pin.read_pin(repo / PROD) == image_pin.ImagePin(None, "0.1.0", None), "no digest: the pin stays"
    pin_staging(repo)
    assert run_promote(repo, tracking_uri) == 0
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == [str(PROD / image_pin.KUSTOMIZATION)]
    head = git(repo, "rev-parse", "HEAD")
    assert run_promote(repo, tracking_uri) == 0
    assert git(repo, "rev-parse", "HEAD") == head
    assert "nothing to promote" in capsys.readouterr().out


def test_a_pin_that_does_not_render_is_put_back_and_nothing_is_committed(
    repo: Path, tracking_uri: str, cluster: Standin, capsys: pytest.CaptureFixture[str]
) -> None:
    pin_staging(repo, image_pin.ImagePin("Not A Valid/Name", "0.1.0", DIGEST))
    before = (repo / PROD / image_pin.KUSTOMIZATION).read_text()
    head = git(repo, "rev-parse", "HEAD")
    assert run_promote(repo, tracking_uri) == 1
    assert (repo / PROD / image_pin.KUSTOMIZATION).read_text() == before
    assert desired_in(repo) == "1"
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == ""
    assert "promote: prod renders images" in capsys.readouterr().err


def require_digests(repo: Path) -> None:
    for environment in (STAGING, PROD):
        image_pin.require_digests(repo / environment)
    git(repo, "commit", "--quiet", "-am", "every environment takes images by digest (what make pin-images writes)")


def test_a_digest_only_target_refuses_a_version_whose_image_is_pinned_by_tag(
    repo: Path, tracking_uri: str, cluster: Standin, capsys: pytest.CaptureFixture[str]
) -> None:
    require_digests(repo)
    head = git(repo, "rev-parse", "HEAD")
    assert run_promote(repo, tracking_uri) == 1
    assert desired_in(repo) == "1", "prod's desired version did not move"
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == ""
    error = capsys.readouterr().err
    assert "prod takes the serving image by digest only" in error
    assert "make pin-images ENV=staging" in error
    pin_staging(repo)
    assert run_promote(repo, tracking_uri) == 0
    assert desired_in(repo) == "2"
    assert image_pin.read_pin(repo / PROD) == PIN


def test_rewriting_the_pin_keeps_the_rest_of_the_file_and_refuses_a_bad_digest() -> None:
    text = (Path(__file__).parents[2] / PROD / image_pin.KUSTOMIZATION).read_text()
    rewritten = image_pin.rewrite_pin(text, PIN)
    assert yaml.safe_load(rewritten)["images"] == [
        {"name": image_pin.SERVING_IMAGE, "newName": PIN.new_name, "newTag": "0.1.0", "digest": DIGEST}
    ]
    assert rewritten.replace(f"    newName: {PIN.new_name}\n", "").replace(f"    digest: {DIGEST}\n", "") == text
    with pytest.raises(overlay.OverlayError, match="sha256"):
        image_pin.rewrite_pin(text, image_pin.ImagePin(None, "0.1.0", "sha256:abc"))
