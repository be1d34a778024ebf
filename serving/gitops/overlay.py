"""An environment overlay's desired model version: read it from what the overlay renders, rewrite it atomically.

Git says which version an environment should serve: one line in `manifests/overlays/<env>/desired.yaml`, a
strategic-merge patch on the canary Deployment's PLINTH_MODEL_VERSION, which the rollout controller reads,
rolls out against the stable and promotes. It is read from the `kubectl kustomize` output rather than from
the file, so the version a promotion compares is the one the environment really deploys.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

DESIRED_FILE = "desired.yaml"
CANARY_SUFFIX = "-canary"
VERSION_ENV = "PLINTH_MODEL_VERSION"
NAME_ENV = "PLINTH_MODEL_NAME"
# The value line that follows `- name: PLINTH_MODEL_VERSION` in desired.yaml.
VERSION_LINE = re.compile(rf'(- name: {VERSION_ENV}\n\s+value: )"?([^"\n]*)"?')


class OverlayError(RuntimeError):
    """An overlay cannot be read, rendered or rewritten; the message says which and why."""


@dataclass(frozen=True)
class Desired:
    """What an overlay says its environment should serve: the registered model and its version."""

    model_name: str
    version: str


def overlay_dir(repo: Path, environment: str) -> Path:
    """Return the directory of `environment`'s overlay in `repo`."""
    return repo / "manifests" / "overlays" / environment


def known_environments(repo: Path) -> list[str]:
    """Return the environments that have an overlay with a desired-version file."""
    root = repo / "manifests" / "overlays"
    return sorted(path.parent.name for path in root.glob(f"*/{DESIRED_FILE}")) if root.is_dir() else []


def render(kubectl: str, directory: Path) -> str:
    """Return `kubectl kustomize` of `directory`, or raise OverlayError with kubectl's message."""
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise OverlayError(f"kubectl kustomize {directory} failed: {result.stderr.strip()}")
    return result.stdout


def rendered_desired(rendered: str) -> Desired:
    """Return the model name and version on the canary Deployment in rendered manifests."""
    for obj in yaml.safe_load_all(rendered):
        if not obj or obj.get("kind") != "Deployment" or not obj["metadata"]["name"].endswith(CANARY_SUFFIX):
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            env = {entry["name"]: entry.get("value") for entry in container.get("env", [])}
            if env.get(VERSION_ENV) and env.get(NAME_ENV):
                return Desired(model_name=str(env[NAME_ENV]), version=str(env[VERSION_ENV]))
    raise OverlayError(f"no canary Deployment with {NAME_ENV} and {VERSION_ENV} in the rendered overlay")


def rewrite_desired(text: str, version: str) -> str:
    """Return desired.yaml's text with the version replaced; everything else (comments too) stays as it was."""
    if not re.fullmatch(r"[0-9]+", version):
        raise OverlayError(f"model version must be digits, got {version!r}")
    updated, count = VERSION_LINE.subn(lambda match: f'{match[1]}"{version}"', text)
    if count != 1:
        raise OverlayError(f"expected one {VERSION_ENV} value in {DESIRED_FILE}, found {count}")
    return updated


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one rename, so a reader sees the old file or the new one, never half."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
