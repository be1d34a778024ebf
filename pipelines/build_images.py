"""Build the project's images with the builder this machine has, and push them: `make images [REGISTRY=…] [PUSH=1]`.

`python -m pipelines.build_images --registry ghcr.io/you [--push]` builds the component, serving and MLflow
images (pipelines.images.IMAGES) with docker buildx, podman or buildah, whichever is on PATH first, and tags
each `<registry>/<name>:<version>` and `<registry>/<name>:<git-sha>`. Without `--push` it builds for this
machine's platform into the local image store. With `--push` it builds each image for its platforms
(`Image.platforms`: linux/amd64 and linux/arm64, serving amd64 only; a multi-platform image cannot be loaded, only
pushed), pushes both tags and writes every image's digest and the
commit to the record (`.plinth-images.json`) that `make compile IMAGE_REGISTRY=…` pins the pipeline with.

The commands, per image (A = version tag, B = git-sha tag, M = a temporary digest file):
  docker:  docker buildx build [--platform P --push --sbom=true --provenance=mode=max --metadata-file M | --load]
           --build-arg VERSION=… --build-arg REVISION=… -f DOCKERFILE -t A -t B CONTEXT
           (buildx attaches the SBOM and the build provenance to the pushed image)
  podman/buildah without push: podman build --build-arg … -f DOCKERFILE -t A -t B CONTEXT
  podman/buildah with push:    podman manifest rm A (a stale list would gain old entries; absent is fine),
           podman build --platform P --manifest A --build-arg … -f DOCKERFILE CONTEXT,
           podman manifest push --all --digestfile M A docker://A, podman manifest push --all A docker://B
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipelines.images import (
    IMAGES,
    RECORD_PATH,
    REPO_ROOT,
    SERVING,
    Image,
    ImageRecordError,
    Record,
    check_registry,
)


class BuildError(RuntimeError):
    """No builder, no commit to tag with, or a build/push that failed; the message is the one line to print."""


@dataclass(frozen=True)
class Builder:
    """A container builder on PATH: `kind` is docker (with buildx), podman or buildah."""

    kind: str
    executable: str


@dataclass(frozen=True)
class Revision:
    """The commit the images are built from: the full id for the record, a short one for the tag."""

    commit: str
    tag: str


def find_builder(which: Callable[[str], str | None] = shutil.which) -> Builder:
    """Return the first usable builder: docker with buildx, else podman, else buildah; raise BuildError if none."""
    docker = which("docker")
    if docker and subprocess.run([docker, "buildx", "version"], capture_output=True, check=False).returncode == 0:
        return Builder("docker", docker)
    for kind in ("podman", "buildah"):
        found = which(kind)
        if found:
            return Builder(kind, found)
    if docker:
        raise BuildError("make images: docker is on PATH but buildx is not: install the docker-buildx plugin")
    raise BuildError("make images: no container builder on PATH: install Docker (with buildx), Podman or Buildah")


def git_revision(repo: Path = REPO_ROOT) -> Revision:
    """Return HEAD of `repo`; a tree with uncommitted changes gets `-dirty`, so no tag claims code it lacks."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BuildError(f"make images: cannot read the commit to tag with (git {args[0]}): {done.stderr.strip()}")
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    suffix = "-dirty" if git("status", "--porcelain") else ""
    return Revision(commit=commit + suffix, tag=commit[:12] + suffix)


def build_commands(
    builder: Builder, image: Image, registry: str, revision: Revision, push: bool, digest_file: Path
) -> list[list[str]]:
    """Return the commands that build (and with `push`, push) one image, in order; see the module docstring."""
    version_ref, sha_ref = image.reference(registry), image.reference(registry, revision.tag)
    build_args = ["--build-arg", f"VERSION={image.tag}", "--build-arg", f"REVISION={revision.commit}"]
    dockerfile, context = ["-f", str(REPO_ROOT / image.dockerfile)], str(REPO_ROOT / image.context)
    tags = ["-t", version_ref, "-t", sha_ref]
    exe = builder.executable
    if builder.kind == "docker":
        pushed = ["--platform", image.platforms, "--push", "--sbom=true", "--provenance=mode=max"]
        mode = [*pushed, "--metadata-file", str(digest_file)] if push else ["--load"]
        return [[exe, "buildx", "build", *mode, *build_args, *dockerfile, *tags, context]]
    if not push:
        return [[exe, "build", *build_args, *dockerfile, *tags, context]]
    return [
        [exe, "manifest", "rm", version_ref],
        [exe, "build", "--platform", image.platforms, "--manifest", version_ref, *build_args, *dockerfile, context],
        [exe, "manifest", "push", "--all", "--digestfile", str(digest_file), version_ref, f"docker://{version_ref}"],
        [exe, "manifest", "push", "--all", version_ref, f"docker://{sha_ref}"],
    ]


def read_digest(builder: Builder, digest_file: Path) -> str:
    """Return the pushed digest from buildx's metadata file or podman's/buildah's digest file."""
    text = digest_file.read_text().strip() if digest_file.is_file() else ""
    digest = json.loads(text).get("containerimage.digest", "") if builder.kind == "docker" and text else text
    if not digest.startswith("sha256:"):
        raise BuildError(f"make images: {builder.kind} pushed but wrote no digest to {digest_file}")
    return str(digest)


def build_image(builder: Builder, image: Image, registry: str, revision: Revision, push: bool) -> str | None:
    """Build (and push) one image, echoing each command; return its digest when pushed."""
    with tempfile.TemporaryDirectory(prefix="plinth-images-") as scratch:
        digest_file = Path(scratch) / "digest"
        for command in build_commands(builder, image, registry, revision, push, digest_file):
            print("  $ " + " ".join(command), flush=True)
            done = subprocess.run(command, check=False)
            # Removing a manifest list that is not there yet is the normal first run.
            if done.returncode != 0 and command[1:3] != ["manifest", "rm"]:
                verb = " ".join(itertools.takewhile(lambda word: not word.startswith("-"), command[1:]))
                raise BuildError(f"make images: {image.name}: `{builder.kind} {verb}` exited {done.returncode}")
        return read_digest(builder, digest_file) if push else None


def build_all(registry: str, push: bool, record_path: Path = RECORD_PATH) -> Record:
    """Build every image in IMAGES; with `push`, write the record of digests to `record_path`."""
    registry = check_registry(registry)
    builder = find_builder()
    revision = git_revision()
    where = f"pushed to {registry}" if push else "built into the local image store (this platform)"
    print(f"make images: {builder.kind} ({builder.executable}), commit {revision.commit}, {len(IMAGES)} images")
    digests: dict[str, str] = {}
    for number, image in enumerate(IMAGES, start=1):
        print(f"[{number}/{len(IMAGES)}] {image.reference(registry)} from {image.dockerfile}", flush=True)
        digest = build_image(builder, image, registry, revision, push)
        if digest:
            digests[image.name] = digest
    record = Record(registry=registry, revision=revision.commit, digests=digests)
    print(f"done: {len(IMAGES)} images {where}, tags :<version> and :{revision.tag}")
    for image in IMAGES:
        print(f"  {record.pinned(image)}")
    if push:
        record_path.write_text(record.to_json())
        print(f"recorded the digests in {record_path}; next: make compile IMAGE_REGISTRY={registry}, make pin-images")
        serving = f"--set image.repository={registry}/{SERVING.name} --set image.digest={digests[SERVING.name]}"
        print(f"helm install … {serving}")
    return record


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, build, and return the exit status (1 with one line on stderr when it cannot)."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.build_images",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--registry", required=True, help="where the images go, e.g. ghcr.io/you")
    parser.add_argument("--push", action="store_true", help="build for each image's platforms, push, record digests")
    parser.add_argument("--record", type=Path, default=RECORD_PATH, help="digest record (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        build_all(args.registry, args.push, args.record)
    except (BuildError, ImageRecordError) as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
