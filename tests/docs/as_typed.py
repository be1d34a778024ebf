"""Run a README block the way a user types it, and prove it left nothing behind in the checkout.

"As typed" means: `bash -euo pipefail -c <the block's text, read from the README>` from the root of a checkout,
in an environment scrubbed to what a bare shell has (PATH without this project's .venv/.tools, HOME, LANG),
the documented state variable PLINTH_HOME pointing at a fresh directory, and the variables the README itself
documents for the command (PORT, ROLLOUT_ARGS). Nothing else: no MLFLOW_TRACKING_URI, no PLINTH_MODEL_*, so
a command that only works because a test exported something fails here as it fails for a user.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from serving.embedded.processes import ManagedProcess
from tests.docs.readme import ROOT, Block

# Directories a bare shell does not have on PATH: the Makefile adds them itself where a verb needs them.
PROJECT_BINS = (ROOT / ".venv" / "bin", ROOT / ".tools" / "bin")


def bare_path() -> str:
    """Return this process's PATH without the project's own bin directories (as a fresh login shell has it)."""
    keep = [
        entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry and Path(entry) not in PROJECT_BINS
    ]
    return os.pathsep.join(keep)


def tree_state(repo: Path) -> set[str]:
    """Return `git status --porcelain --ignored` entries, bytecode caches aside (Python writes those anywhere).

    Ignored entries count: a stray `mlruns/` or `.plinth/` is ignored by .gitignore yet still a fault.
    """
    result = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--ignored"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {line for line in result.stdout.splitlines() if "__pycache__" not in line}


@contextlib.contextmanager
def tree_unchanged(what: str, repo: Path) -> Iterator[None]:
    """Fail when the body adds, changes or removes a path in the working tree (tracked, untracked or ignored)."""
    before = tree_state(repo)
    yield
    after = tree_state(repo)
    assert after == before, (
        f"{what} changed the working tree of {repo}:\n"
        f"  appeared: {sorted(after - before)}\n  gone: {sorted(before - after)}"
    )


# What a command that resolves state against the working directory (or this source tree) leaves behind.
STRAY_STATE = ("mlflow.db", "mlruns", "local_outputs", ".plinth", "bentoml")


@contextlib.contextmanager
def no_stray_state_in_the_source_tree(what: str) -> Iterator[None]:
    """Fail when local state appears in the real repository while a command runs in a checkout.

    The installed `plinth` package is an editable install of this tree, so a module that writes next to its
    own source would write here rather than into the checkout. Only names of local state are watched: the
    real tree may be edited meanwhile, its `git status` cannot be compared.
    """
    before = {name for name in STRAY_STATE if (ROOT / name).exists()}
    yield
    appeared = {name for name in STRAY_STATE if (ROOT / name).exists()} - before
    assert not appeared, f"{what} created {sorted(appeared)} in {ROOT}"


@dataclass(frozen=True)
class Typed:
    """A finished block: exit status and everything it printed (stdout and stderr interleaved)."""

    returncode: int
    output: str

    def tail(self, lines: int = 40) -> str:
        """Return the end of the output, for assertion messages."""
        return "\n".join(self.output.splitlines()[-lines:])


@dataclass(frozen=True)
class UserShell:
    """A user's shell at the root of a checkout (tests/docs/checkout.py), with its own HOME and PLINTH_HOME."""

    home: Path
    plinth_home: Path
    cwd: Path

    def environment(self, documented: dict[str, str]) -> dict[str, str]:
        """Return the whole environment of a typed command: the bare shell plus what the README documents."""
        return {
            "PATH": bare_path(),
            "HOME": str(self.home),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PLINTH_HOME": str(self.plinth_home),
            **documented,
        }

    def argv(self, block: Block, documented: dict[str, str]) -> list[str]:
        """Return the command line: `env -i` (nothing inherited, cwd the repository) then bash running the block."""
        if not block.is_shell or block.language == "console":
            raise ValueError(f"{block.where}: only plain shell blocks run as typed, not {block.language or 'untagged'}")
        assignments = [f"{key}={value}" for key, value in self.environment(documented).items()]
        return ["env", "-i", "-C", str(self.cwd), *assignments, "bash", "-euo", "pipefail", "-c", block.text]

    def run(self, block: Block, timeout: float, **documented: str) -> Typed:
        """Run the block to the end and return its exit status and output; the tree must stay as it was."""
        self.home.mkdir(parents=True, exist_ok=True)
        what = f"{block.where} ({block.text.strip()!r})"
        with tree_unchanged(what, self.cwd), no_stray_state_in_the_source_tree(what):
            result = subprocess.run(
                self.argv(block, documented),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
        return Typed(result.returncode, result.stdout)

    def start(self, block: Block, log: Path, ready_url: str, **documented: str) -> ManagedProcess:
        """Start a long-running block (a server) in its own session; the caller polls and stops it."""
        self.home.mkdir(parents=True, exist_ok=True)
        return ManagedProcess(block.where, self.argv(block, documented), log, ready_url=ready_url).start()
