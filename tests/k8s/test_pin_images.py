"""`make pin-images`: the staging overlay and the platform run the images `make images PUSH=1` recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from k8s_tooling import ROOT, tool
from test_promote import git, repo

from pipelines.images import COMPONENTS, DEFAULT_REGISTRY, MLFLOW, SERVING, Image, Record
from serving.gitops import image_pin, overlay

__all__ = ["repo"]  # the fixture, shared with test_promote.py

REGISTRY = "registry.example.com:5000/team"
DIGESTS = {image.name: "sha256:" + f"{number}" * 64 for number, image in enumerate((COMPONENTS, SERVING, MLFLOW), 1)}


def record_at(tmp_path: Path, digests: dict[str, str] = DIGESTS) -> Path:
    path = tmp_path / "images.json"
    path.write_text(Record(registry=REGISTRY, revision="4f2a" * 10, digests=digests).to_json())
    return path


def rendered(repo: Path, directory: str) -> str:
    return overlay.render(tool("kubectl"), repo / directory)


def pinned(image_name: str, tag: str) -> str:
    return f"{REGISTRY}/{image_name}:{tag}@{DIGESTS[image_name]}"


def test_staging_and_the_platform_run_the_recorded_digests(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert image_pin.main(["--env", "staging", "--repo", str(repo), "--record", str(record_at(tmp_path))]) == 0
    staging = rendered(repo, "manifests/overlays/staging")
    assert image_pin.rendered_images(staging, SERVING.name) == {pinned(SERVING.name, SERVING.tag)}
    platform = rendered(repo, "manifests/platform")
    assert image_pin.rendered_images(platform, MLFLOW.name) == {pinned(MLFLOW.name, MLFLOW.tag)}
    component = pinned(COMPONENTS.name, COMPONENTS.tag)
    assert image_pin.rendered_images(platform, COMPONENTS.name) == {component}
    assert f"value: {component}" in platform, "the upload Job compiles the pipeline against the image it runs"
    prod_before = rendered(repo, "manifests/overlays/prod")
    changed = sorted(git(repo, "status", "--porcelain").split()[1::2])
    assert changed == [
        "manifests/overlays/prod/kustomization.yaml",
        "manifests/overlays/staging/kustomization.yaml",
        "manifests/platform/mlflow/kustomization.yaml",
        "manifests/platform/pipeline-upload/kustomization.yaml",
        "manifests/platform/signer/kustomization.yaml",
    ]
    assert "5 files changed" in capsys.readouterr().out
    signer = rendered(repo, "manifests/platform/signer")
    assert image_pin.rendered_images(signer, COMPONENTS.name) == {component}, "the signer runs the pinned image"
    assert image_pin.read_pin(repo / "manifests/overlays/prod") == image_pin.ImagePin(None, "0.1.0", None)
    for environment in ("staging", "prod"):  # from now on every overlay takes its image by digest only
        assert image_pin.digest_required(repo / "manifests/overlays" / environment)
    assert rendered(repo, "manifests/overlays/prod") == prod_before, "the annotation is the Kustomization's own"
    assert image_pin.IMAGE_PINS_ANNOTATION not in staging
    assert image_pin.main(["--env", "staging", "--repo", str(repo), "--record", str(record_at(tmp_path))]) == 0
    assert "0 files changed" in capsys.readouterr().out


def test_without_a_record_it_says_what_to_run_and_changes_nothing(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert image_pin.main(["--repo", str(repo), "--record", str(tmp_path / "none.json")]) == 1
    err = capsys.readouterr().err
    assert err == f"pin-images: no image record at {tmp_path / 'none.json'}: run make images REGISTRY=… PUSH=1 first\n"
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "qa"], "pin-images: unknown environment 'qa' (known: prod, staging)"),
        ([], "pin-images: the image record has no digest of mlflow: run make images PUSH=1"),
    ],
)
def test_bad_input_is_refused_in_one_line(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    record = record_at(tmp_path, {name: digest for name, digest in DIGESTS.items() if name != MLFLOW.name})
    assert image_pin.main([*args, "--repo", str(repo), "--record", str(record)]) == 1
    assert capsys.readouterr().err == message + "\n"
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("directory", "image"),
    [
        ("manifests/overlays/staging", SERVING),
        ("manifests/overlays/prod", SERVING),
        ("manifests/platform/mlflow", MLFLOW),
        ("manifests/platform/pipeline-upload", COMPONENTS),
        ("manifests/platform/signer", COMPONENTS),
    ],
)
def test_the_committed_pins_are_the_tags_make_images_builds(directory: str, image: Image) -> None:
    pin = image_pin.read_pin(ROOT / directory, f"{DEFAULT_REGISTRY}/{image.name}")
    assert pin is not None
    assert pin.new_tag == image.tag
