"""The images plinth ships, and the record of what `make images PUSH=1` pushed.

One catalog names each image (repository name, Dockerfile, build context, version tag), so the builder,
the compiler and the docs agree on the references. The record (`.plinth-images.json` at the repository
root) holds the registry, the commit the images were built from and each pushed image's digest; it is
generated per user and registry, so it is ignored by Git: the committed pipeline YAML and overlays keep the
project's own images, and `make compile IMAGE_REGISTRY=…` reads the record to pin the user's image by digest.
It lives in `pipelines/` because the compile step that reads it also runs inside the component image.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from components import COMPONENT_IMAGE, __version__

REPO_ROOT = Path(__file__).resolve().parents[1]
RECORD_PATH = REPO_ROOT / ".plinth-images.json"
DEFAULT_REGISTRY = COMPONENT_IMAGE.rsplit("/", 1)[0]
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# host[:port] then lowercase path segments: what an image reference may hold before `/<name>:<tag>`.
REGISTRY = re.compile(r"[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*")


class ImageRecordError(ValueError):
    """The image record or a registry name is malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Image:
    """One image the project builds: `<registry>/<name>:<tag>` from `dockerfile` in `context`."""

    name: str
    dockerfile: str
    context: str
    tag: str
    platforms: str = "linux/amd64,linux/arm64"

    def reference(self, registry: str, tag: str | None = None) -> str:
        """Return `<registry>/<name>:<tag>` (this image's version tag unless another is given)."""
        return f"{registry}/{self.name}:{tag or self.tag}"


COMPONENTS = Image("plinth-components", "components/Dockerfile", ".", COMPONENT_IMAGE.rsplit(":", 1)[1])
# The serving image installs PyTorch's CPU build, whose hash requirements-serving.lock records for x86_64 only
# (PyTorch's own index is unreachable where the lock was made): amd64 until `make lock TORCH_CPU_LINKS=…` adds arm64.
SERVING = Image("plinth-serving", "serving/Dockerfile", ".", __version__, platforms="linux/amd64")
# The platform's MLflow image is tagged with the MLflow version it serves, the one plinth pins.
MLFLOW = Image("mlflow", "manifests/platform/mlflow/Dockerfile", "manifests/platform/mlflow", version("mlflow"))
IMAGES = (COMPONENTS, SERVING, MLFLOW)


@dataclass(frozen=True)
class Record:
    """What one `make images PUSH=1` pushed: registry, source commit, and each image's digest by name."""

    registry: str
    revision: str
    digests: dict[str, str] = field(default_factory=dict)

    def pinned(self, image: Image) -> str:
        """Return the image's reference in this registry, `@sha256:…` appended when a digest was recorded."""
        digest = self.digests.get(image.name)
        return image.reference(self.registry) + (f"@{digest}" if digest else "")

    def to_json(self) -> str:
        """Return the record as the JSON written to `.plinth-images.json`."""
        images = {name: {"digest": digest} for name, digest in sorted(self.digests.items())}
        return json.dumps({"registry": self.registry, "revision": self.revision, "images": images}, indent=2) + "\n"


def check_registry(registry: str) -> str:
    """Return `registry` without a trailing slash; refuse an empty one or one with a tag or digest."""
    cleaned = registry.strip().rstrip("/")
    if not REGISTRY.fullmatch(cleaned):
        raise ImageRecordError(f"registry must look like ghcr.io/you or localhost:5000/team, got {registry!r}")
    return cleaned


def load_record(path: Path = RECORD_PATH) -> Record | None:
    """Return the record at `path`, None when there is none; raise ImageRecordError when it is malformed."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        digests = {name: str(entry["digest"]) for name, entry in data["images"].items()}
        record = Record(registry=str(data["registry"]), revision=str(data["revision"]), digests=digests)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ImageRecordError(f"{path} is not an image record ({error}): delete it and rerun make images") from error
    bad = [name for name, digest in record.digests.items() if not DIGEST.fullmatch(digest)]
    if bad:
        raise ImageRecordError(f"{path}: digest of {', '.join(bad)} is not sha256:<64 hex>")
    return record


def component_image(registry: str, record: Record | None) -> tuple[str, str | None]:
    """Return the component image in `registry` and the commit it was built from.

    By digest, with the record's commit, when the record is of the same registry; else by tag, commit unknown.
    """
    registry = check_registry(registry)
    if record is not None and record.registry == registry:
        return record.pinned(COMPONENTS), record.revision
    return COMPONENTS.reference(registry), None
