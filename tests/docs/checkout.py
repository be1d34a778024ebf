"""A throwaway checkout of this working tree, where the tier types the README's commands.

A user types the commands in a checkout of their own; the tier does the same in a fresh Git repository
whose one commit is the working tree as it is now (tracked and untracked files). That keeps the real tree
out of reach of anything a command writes or commits, and makes `git status` after a command say exactly
what that command left behind, even while other work goes on in the real tree. The checkout borrows the
real `.venv` and `.tools` through symlinks (excluded in its `.git/info/exclude`, so they are not changes),
with the files the Makefile's `.venv` stamp depends on dated to the epoch, so `make` never decides to
reinstall into the shared `.venv` from the copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.docs.readme import ROOT

BORROWED = (".venv", ".tools")
STAMP_INPUTS = ("pyproject.toml", "requirements.lock", "requirements-bootstrap.lock")


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` and return its output; a failure raises."""
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def working_tree_copy(destination: Path) -> Path:
    """Return a new Git repository at `destination` whose one commit is this working tree as it is now."""
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git(destination, "init", "--quiet", "--initial-branch=main")
    git(destination, "config", "user.email", "docs-test@plinth.dev")
    git(destination, "config", "user.name", "plinth docs test")
    git(destination, "add", "-A")
    git(destination, "-c", "commit.gpgsign=false", "commit", "--quiet", "--no-verify", "-m", "the working tree")
    for name in BORROWED:
        (destination / name).symlink_to(ROOT / name, target_is_directory=True)
    with (destination / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.writelines(f"/{name}\n" for name in BORROWED)
    for name in STAMP_INPUTS:
        os.utime(destination / name, (0, 0))
    assert git(destination, "status", "--porcelain") == "", "the checkout starts clean"
    return destination
