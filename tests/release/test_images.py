"""`make images`: which builder it picks, the exact commands it runs, the digest record it writes.

No container engine runs here: a fake docker / podman (tests/release/fake_builder.py) on an otherwise bare
PATH logs every command and writes the digest files a real builder writes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components import __version__
from pipelines.build_images import git_revision
from pipelines.images import REPO_ROOT, load_record
from tests.release.fake_builder import digest_of

REGISTRY = "registry.example.com:5000/team"
FAKE = Path(__file__).with_name("fake_builder.py")
NO_BUILDER = "make images: no container builder on PATH: install Docker (with buildx), Podman or Buildah"
# name, Dockerfile, context, version tag, platforms: what the README and pipelines/images.py document.
BOTH = "linux/amd64,linux/arm64"
IMAGES = [
    ("plinth-components", "components/Dockerfile", ".", f"{__version__}-python3.11", BOTH),
    ("plinth-serving", "serving/Dockerfile", ".", __version__, "linux/amd64"),
    ("mlflow", "manifests/platform/mlflow/Dockerfile", "manifests/platform/mlflow", "3.17.2", BOTH),
]


def bare_path(tmp_path: Path, *builders: str) -> Path:
    """Return a bin folder holding only git and the named fake builders."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("git") or "/usr/bin/git", bin_dir / "git")
    for name in builders:
        script = bin_dir / name
        script.write_text(f"#!{sys.executable}\n" + FAKE.read_text())
        script.chmod(0o755)
    return bin_dir


def run_images(tmp_path: Path, bin_dir: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list]:
    """Run `python -m pipelines.build_images` with only `bin_dir` on PATH; return it and the builder's log."""
    log = tmp_path / "builder.log"
    log.touch()
    environment = {**os.environ, "PATH": str(bin_dir), "FAKE_BUILDER_LOG": str(log), **env}
    command = [sys.executable, "-m", "pipelines.build_images", "--registry", REGISTRY, *args]
    done = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, check=False)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    for call in calls:  # the digest file is a fresh temporary path each run
        for flag in ("--metadata-file", "--digestfile"):
            if flag in call:
                call[call.index(flag) + 1] = "M"
    return done, calls


def test_make_images_without_a_builder_says_so_in_one_line(tmp_path: Path):
    bin_dir = bare_path(tmp_path)
    make = shutil.which("make")
    assert make, "make is needed to run the documented command"
    done = subprocess.run(
        # -o: take .venv as installed, so make does not try to set it up without a network.
        [make, "-o", ".venv/.installed", "images", f"REGISTRY={REGISTRY}"],
        cwd=REPO_ROOT,
        env={**os.environ, "PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert NO_BUILDER in done.stderr.splitlines(), done.stderr


def test_docker_without_buildx_and_nothing_else_is_named(tmp_path: Path):
    done, calls = run_images(tmp_path, bare_path(tmp_path, "docker"), FAKE_NO_BUILDX="1")
    assert done.returncode == 1
    assert done.stderr.strip() == "make images: docker is on PATH but buildx is not: install the docker-buildx plugin"
    assert calls == [["docker", "buildx", "version"]]


def test_docker_push_builds_both_platforms_tags_version_and_sha_and_records_digests(tmp_path: Path):
    revision = git_revision()
    record_path = tmp_path / "images.json"
    done, calls = run_images(tmp_path, bare_path(tmp_path, "docker", "podman"), "--push", "--record", str(record_path))
    assert done.returncode == 0, done.stderr
    expected = [["docker", "buildx", "version"]]
    for name, dockerfile, context, tag, platforms in IMAGES:
        pushed = ["--platform", platforms, "--push", "--sbom=true", "--provenance=mode=max"]
        build_args = ["--build-arg", f"VERSION={tag}", "--build-arg", f"REVISION={revision.commit}"]
        tags = ["-t", f"{REGISTRY}/{name}:{tag}", "-t", f"{REGISTRY}/{name}:{revision.tag}"]
        source = ["-f", str(REPO_ROOT / dockerfile), *tags, str(REPO_ROOT / context)]
        expected.append(["docker", "buildx", "build", *pushed, "--metadata-file", "M", *build_args, *source])
    assert calls == expected
    record = load_record(record_path)
    assert record is not None
    assert record.registry == REGISTRY
    assert record.revision == revision.commit
    assert record.digests == {name: digest_of(f"{REGISTRY}/{name}:{tag}") for name, _, _, tag, _ in IMAGES}
    assert f"{REGISTRY}/plinth-serving:{__version__}@{record.digests['plinth-serving']}" in done.stdout
    serving = f"--set image.repository={REGISTRY}/plinth-serving --set image.digest={record.digests['plinth-serving']}"
    assert serving in done.stdout, "the chart values that run the pushed serving image"


def test_docker_without_push_loads_this_platform_and_records_nothing(tmp_path: Path):
    record_path = tmp_path / "images.json"
    done, calls = run_images(tmp_path, bare_path(tmp_path, "docker"), "--record", str(record_path))
    assert done.returncode == 0, done.stderr
    builds = [call for call in calls if call[1:3] == ["buildx", "build"]]
    assert len(builds) == len(IMAGES)
    for call in builds:
        assert "--load" in call
        assert "--push" not in call
        assert "--platform" not in call
    assert not record_path.exists()


def test_podman_push_builds_a_manifest_list_and_pushes_both_tags(tmp_path: Path):
    revision = git_revision()
    record_path = tmp_path / "images.json"
    done, calls = run_images(tmp_path, bare_path(tmp_path, "podman", "buildah"), "--push", "--record", str(record_path))
    assert done.returncode == 0, done.stderr
    expected = []
    for name, dockerfile, context, tag, platforms in IMAGES:
        version_ref, sha_ref = f"{REGISTRY}/{name}:{tag}", f"{REGISTRY}/{name}:{revision.tag}"
        build_args = ["--build-arg", f"VERSION={tag}", "--build-arg", f"REVISION={revision.commit}"]
        source = ["-f", str(REPO_ROOT / dockerfile), str(REPO_ROOT / context)]
        expected += [
            ["podman", "manifest", "rm", version_ref],
            ["podman", "build", "--platform", platforms, "--manifest", version_ref, *build_args, *source],
            ["podman", "manifest", "push", "--all", "--digestfile", "M", version_ref, f"docker://{version_ref}"],
            ["podman", "manifest", "push", "--all", version_ref, f"docker://{sha_ref}"],
        ]
    assert calls == expected
    record = load_record(record_path)
    assert record is not None
    assert record.digests["plinth-components"] == digest_of(f"{REGISTRY}/plinth-components:{IMAGES[0][3]}")


def test_a_failed_build_stops_with_the_image_and_the_exit_status(tmp_path: Path):
    bin_dir = bare_path(tmp_path)
    (bin_dir / "buildah").write_text("#!/bin/sh\nexit 3\n")
    (bin_dir / "buildah").chmod(0o755)
    done, _ = run_images(tmp_path, bin_dir)
    assert done.returncode == 1
    assert done.stderr.strip() == "make images: plinth-components: `buildah build` exited 3"


@pytest.mark.parametrize("registry", ["", "ghcr.io/you:1.0", "ghcr.io/You", "ghcr.io/you@sha256:abc"])
def test_a_malformed_registry_is_refused_before_anything_runs(tmp_path: Path, registry: str):
    done, calls = run_images(tmp_path, bare_path(tmp_path, "docker"), "--registry", registry)
    assert done.returncode == 1
    assert done.stderr.startswith("registry must look like"), done.stderr
    assert calls == []
