"""Locate the Kubernetes CLIs the GitOps commands drive: PATH first, then the project's pinned .tools/bin."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

LOCAL_BIN = Path(__file__).resolve().parents[2] / ".tools" / "bin"


class ToolMissingError(FileNotFoundError):
    """A required CLI is not installed; the message says how to install it."""


def find_tool(name: str) -> str:
    """Return the path of `name` (helm, kubectl) on PATH or in .tools/bin (from .ci/install-k8s-tools.sh)."""
    found = shutil.which(name) or shutil.which(name, path=str(LOCAL_BIN))
    if found is None:
        raise ToolMissingError(f"{name} not found on PATH or in {LOCAL_BIN}: run `bash .ci/install-k8s-tools.sh`")
    return found


def write_or_check(target: Path, content: str, check: bool, command: str) -> int:
    """Write a generated file, or with `check` compare it; return the exit code (1: stale).

    Generated files are committed, and CI fails when regenerating them would change the tree.
    """
    if check:
        if not target.exists() or target.read_text() != content:
            print(f"{target} is stale; run `{command}`", file=sys.stderr)
            return 1
        return 0
    target.write_text(content)
    return 0
