"""Image pins of the kustomizations: which registry, tag and digest each of the project's images comes from.

An environment overlay pins the serving image it runs, the platform pins the MLflow and component images (the
pipeline upload and the signer), each as one `images:` entry of its kustomization.yaml: `newName` (your
registry), `newTag`, `digest`.
`python -m serving.gitops.image_pin --env staging` (`make pin-images ENV=staging`) writes the images that
`make images PUSH=1` recorded into the staging overlay and the platform, by digest; commit them, and
`make promote` carries the serving pin on to the next environment with the model version (a source that
pins a digest moves its pin along), so each environment runs the code that was analysed before it. Entries
are rewritten line by line: comments and everything else in the files stay as they were.

Pinning also makes digests the default from then on: every environment overlay gets the Kustomization
annotation `plinth.dev/image-pins: digest-required` (kustomize keeps a Kustomization's own metadata out of
what it renders), and `make promote` refuses to move a version into such an environment unless the image it
would run there is pinned by digest. A tag can be moved; once your images are yours, no overlay goes back to one.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipelines.images import (
    COMPONENTS,
    DEFAULT_REGISTRY,
    DIGEST,
    MLFLOW,
    RECORD_PATH,
    SERVING,
    Image,
    ImageRecordError,
    Record,
    load_record,
)
from serving.gitops.overlay import OverlayError, known_environments, overlay_dir, render, write_atomically
from serving.gitops.tools import ToolMissingError, find_tool

KUSTOMIZATION = "kustomization.yaml"
# The serving image as the base manifests name it; overlays' `images:` entries match this name.
SERVING_IMAGE = f"{DEFAULT_REGISTRY}/{SERVING.name}"
# The Kustomization annotation that makes an environment take the serving image by digest only.
IMAGE_PINS_ANNOTATION = "plinth.dev/image-pins"
DIGEST_REQUIRED = "digest-required"
# Where the platform pins the other two images, relative to the repository root.
PLATFORM_PINS = (
    (MLFLOW, Path("manifests/platform/mlflow")),
    (COMPONENTS, Path("manifests/platform/pipeline-upload")),
    (COMPONENTS, Path("manifests/platform/signer")),  # the signer runs the components image (serving/signer)
)


@dataclass(frozen=True)
class ImagePin:
    """Where one image comes from: registry/repository, tag, and digest when pinned; `name` as manifests say it."""

    new_name: str | None
    new_tag: str | None
    digest: str | None
    name: str = SERVING_IMAGE

    def reference(self) -> str:
        """Return the image reference this pin renders to (`name[:tag][@digest]`)."""
        tag = f":{self.new_tag}" if self.new_tag else ""
        return f"{self.new_name or self.name}{tag}" + (f"@{self.digest}" if self.digest else "")

    def lines(self, indent: str) -> str:
        """Return the entry's body lines (after `- name:`), at the list item's indentation."""
        keys = (("newName", self.new_name), ("newTag", f'"{self.new_tag}"' if self.new_tag else None))
        pairs = (*keys, ("digest", self.digest))
        return "".join(f"{indent}  {key}: {value}\n" for key, value in pairs if value)


def recorded_pin(record: Record, image: Image) -> ImagePin:
    """Return the pin of `image` as `make images PUSH=1` recorded it: the user's registry, tag and digest."""
    digest = record.digests.get(image.name)
    if digest is None:
        raise ImageRecordError(f"the image record has no digest of {image.name}: run make images PUSH=1")
    return ImagePin(f"{record.registry}/{image.name}", image.tag, digest, f"{DEFAULT_REGISTRY}/{image.name}")


def read_pin(directory: Path, name: str = SERVING_IMAGE) -> ImagePin | None:
    """Return the pin of image `name` in the kustomization in `directory`, None when it has none."""
    data = yaml.safe_load((directory / KUSTOMIZATION).read_text()) or {}
    for entry in data.get("images") or []:
        if entry.get("name") == name:
            tag = entry.get("newTag")  # may be written unquoted, as a number
            return ImagePin(entry.get("newName"), None if tag is None else str(tag), entry.get("digest"), name)
    return None


def rewrite_pin(text: str, pin: ImagePin) -> str:
    """Return kustomization.yaml's text with the entry of `pin.name` set to `pin`; the rest stays as it was."""
    if pin.digest and not DIGEST.fullmatch(pin.digest):
        raise OverlayError(f"image digest must be sha256:<64 hex>, got {pin.digest!r}")
    entry = re.compile(rf"(?m)(?P<head>^(?P<indent>[ \t]*)- name: {re.escape(pin.name)}\n)(?:(?P=indent)  \S.*\n)*")
    updated, count = entry.subn(lambda match: match["head"] + pin.lines(match["indent"]), text)
    if count != 1:
        raise OverlayError(f"expected one `- name: {pin.name}` entry under images: in {KUSTOMIZATION}, found {count}")
    return updated


def digest_required(directory: Path) -> bool:
    """Return whether the kustomization in `directory` takes images by digest only (its own annotation)."""
    return digest_required_text((directory / KUSTOMIZATION).read_text())


def require_digests(directory: Path) -> Path | None:
    """Annotate the kustomization in `directory` as taking images by digest only; None when it already is.

    The annotation goes into the Kustomization's own `metadata:` (written after `kind: Kustomization` when
    there is none); comments and the rest of the file stay as they were.
    """
    if digest_required(directory):
        return None
    path = directory / KUSTOMIZATION
    text = path.read_text()
    data = yaml.safe_load(text) or {}
    line = f"    {IMAGE_PINS_ANNOTATION}: {DIGEST_REQUIRED}\n"
    if "metadata" not in data:
        head = "metadata:\n  annotations:\n"
        updated, count = re.subn(r"(?m)^kind: Kustomization\n", lambda m: m[0] + head + line, text)
    elif "annotations" not in (data["metadata"] or {}):
        updated, count = re.subn(r"(?m)^metadata:\n", lambda m: m[0] + "  annotations:\n" + line, text)
    else:
        updated, count = re.subn(r"(?m)^  annotations:\n", lambda m: m[0] + line, text)
    if count != 1 or not digest_required_text(updated):
        raise OverlayError(f"cannot annotate {path} with {IMAGE_PINS_ANNOTATION}: add it under metadata.annotations")
    write_atomically(path, updated)
    return path


def digest_required_text(text: str) -> bool:
    """Return whether kustomization text carries the digest-only annotation."""
    annotations = ((yaml.safe_load(text) or {}).get("metadata") or {}).get("annotations") or {}
    return annotations.get(IMAGE_PINS_ANNOTATION) == DIGEST_REQUIRED


def rendered_images(rendered: str, name: str) -> set[str]:
    """Return the images of every workload's containers in rendered manifests whose name contains `name`."""
    images = set()
    for obj in yaml.safe_load_all(rendered):
        pod = ((obj or {}).get("spec") or {}).get("template", {}).get("spec", {})
        images |= {container["image"] for container in pod.get("containers", []) if name in container["image"]}
    return images


def move_pin(kubectl: str, directory: Path, pin: ImagePin) -> Path:
    """Rewrite one pin and prove every container of that image renders with it; restore the file if not."""
    path = directory / KUSTOMIZATION
    original = path.read_text()
    write_atomically(path, rewrite_pin(original, pin))
    try:
        rendered = rendered_images(render(kubectl, directory), pin.name.rsplit("/", 1)[1])
        if rendered != {pin.reference()}:
            raise OverlayError(f"{directory.name} renders images {sorted(rendered)}, not {pin.reference()}")
    except OverlayError:
        write_atomically(path, original)
        raise
    return path


def pin_recorded(kubectl: str, repo: Path, environment: str, record: Record) -> list[Path]:
    """Pin the environment's serving image and the platform's images to the record; return the changed files."""
    if environment not in known_environments(repo):
        raise OverlayError(f"unknown environment {environment!r} (known: {', '.join(known_environments(repo))})")
    pins = [(recorded_pin(record, SERVING), overlay_dir(repo, environment))]
    pins += [(recorded_pin(record, image), repo / directory) for image, directory in PLATFORM_PINS]
    moved = [move_pin(kubectl, directory, pin) for pin, directory in pins if read_pin(directory, pin.name) != pin]
    marked = (require_digests(overlay_dir(repo, name)) for name in known_environments(repo))
    return list(dict.fromkeys([*moved, *(path for path in marked if path is not None)]))


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, pin, print the files to commit; 1 with one line on stderr when it cannot."""
    parser = argparse.ArgumentParser(prog="python -m serving.gitops.image_pin", description=__doc__)
    parser.add_argument("--env", default="staging", help="overlay whose serving image to pin (default: staging)")
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the GitOps repository (default: here)")
    parser.add_argument("--record", type=Path, default=RECORD_PATH, help="digest record (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        record = load_record(args.record)
        if record is None:
            raise ImageRecordError(f"no image record at {args.record}: run make images REGISTRY=… PUSH=1 first")
        changed = pin_recorded(find_tool("kubectl"), args.repo.resolve(), args.env, record)
    except (ImageRecordError, OverlayError, ToolMissingError) as error:
        print(f"pin-images: {error}", file=sys.stderr)
        return 1
    for path in changed:
        print(f"pinned {path.relative_to(args.repo.resolve())}")
    print(f"{len(changed)} files changed: commit them; make promote carries the serving pin to the next environment")
    return 0


if __name__ == "__main__":
    sys.exit(main())
