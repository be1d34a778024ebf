"""The README files, their fenced blocks and the `docs-test` markers that say what the tier does with each.

A shell block in a README is a promise that typing it works. Each one carries a marker in the README source,
an HTML comment ending on the line just before the fence:

    <!-- docs-test: run <test-id> -->      a test claims the block and runs it (tests/docs/README.md)
    <!-- docs-test: skip <reason> -->      deliberately not run; the reason says why

Parsing is CommonMark-shaped (backtick or tilde fences, up to three spaces of indent, a closing fence of the
same character at least as long) so that what the tier reads is what GitHub renders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Where READMEs live: the root one, and every README.md below these folders (a new one is covered).
README_ROOTS = ("components", "pipelines", "serving", "helm", "manifests")
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console", "zsh", "shell-session"})
MARKER_PREFIX = "<!-- docs-test:"
TEST_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Marker:
    """A parsed `docs-test` comment: `run` with a test id, or `skip` with a reason."""

    verb: str
    argument: str
    line: int


@dataclass(frozen=True)
class Block:
    """One fenced block of a README: where it is, its language, its text, and its marker (if any)."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    marker: Marker | None
    closed: bool

    @property
    def where(self) -> str:
        """Return `README path:line`, relative to the repository, for messages and test ids."""
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{shown}:{self.line}"

    @property
    def is_shell(self) -> bool:
        """Return whether the block is commands a user types."""
        return self.language in SHELL_LANGUAGES


def readme_paths() -> list[Path]:
    """Return the root README and every README.md under the component, pipeline and serving folders."""
    found = {ROOT / "README.md"}
    for top in README_ROOTS:
        found.update(
            path
            for path in (ROOT / top).rglob("README.md")
            if not any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(ROOT).parts)
        )
    return sorted(path for path in found if path.is_file())


def parse_marker(comment: str, line: int) -> Marker:
    """Parse the text of one `<!-- docs-test: … -->` comment; a malformed one keeps its text as the argument."""
    body = comment.strip().removeprefix(MARKER_PREFIX).removesuffix("-->")
    verb, _, argument = " ".join(body.split()).partition(" ")
    return Marker(verb=verb, argument=argument.strip(), line=line)


def marker_before(lines: list[str], fence_index: int) -> Marker | None:
    """Return the docs-test comment that ends on the line just before `lines[fence_index]`, if there is one."""
    end = fence_index - 1
    if end < 0 or not lines[end].rstrip().endswith("-->"):
        return None
    start = end
    while start >= 0 and "<!--" not in lines[start]:
        start -= 1
    if start < 0 or not lines[start].lstrip().startswith(MARKER_PREFIX):
        return None
    return parse_marker(" ".join(lines[start : end + 1]), start + 1)


@cache
def blocks_of(path: Path) -> tuple[Block, ...]:
    """Return every fenced block of one README, in order."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None or ("`" in opening["info"] and opening["fence"][0] == "`"):
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not closing.match(lines[end]):
            line = lines[end]
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
            end += 1
        words = opening["info"].split()
        blocks.append(
            Block(
                path=path,
                line=index + 1,
                language=words[0].lower() if words else "",
                text="\n".join(body) + "\n",
                marker=marker_before(lines, index),
                closed=end < len(lines),
            )
        )
        index = end + 1
    return tuple(blocks)


def all_blocks() -> list[Block]:
    """Return the fenced blocks of every README the tier covers."""
    return [block for path in readme_paths() for block in blocks_of(path)]


def orphan_markers(path: Path) -> list[int]:
    """Return the lines of docs-test comments that are not directly followed by a fence."""
    lines = path.read_text().splitlines()
    attached = {block.marker.line for block in blocks_of(path) if block.marker}
    return [number for number, line in enumerate(lines, 1) if MARKER_PREFIX in line and number not in attached]


def problems(block: Block, claimed: set[str]) -> list[str]:
    """Return what is wrong with one block's marking (empty when it is fine)."""
    where = block.where
    if not block.closed:
        return [f"{where}: the fence is never closed"]
    if not block.language:
        return [f"{where}: a fence without a language; tag it (`text` for trees and output, `bash` for commands)"]
    marker = block.marker
    if marker is None:
        if not block.is_shell:
            return []
        return [
            f"{where}: a {block.language} block without a marker; put `<!-- docs-test: run <test-id> -->` or "
            "`<!-- docs-test: skip <reason> -->` on the line just before the fence (tests/docs/README.md)"
        ]
    if marker.verb == "skip":
        return [] if marker.argument else [f"{where}: `docs-test: skip` needs a reason"]
    if marker.verb != "run":
        return [f"{where}: unknown docs-test verb {marker.verb!r} (run or skip)"]
    if not TEST_ID.fullmatch(marker.argument):
        return [f"{where}: `docs-test: run` needs one test id like `loop-serve`, got {marker.argument!r}"]
    if marker.argument not in claimed:
        return [f"{where}: no test claims `run {marker.argument}` (tests/docs/*: claim({marker.argument!r}))"]
    return []


CLAIMED: set[str] = set()


@dataclass(frozen=True)
class Claim:
    """A test's claim on the blocks marked `run <test_id>`; the blocks are looked up when the test runs."""

    test_id: str

    def blocks(self) -> list[Block]:
        """Return every block marked `run <test_id>`."""
        return [
            block
            for block in all_blocks()
            if block.marker and block.marker.verb == "run" and block.marker.argument == self.test_id
        ]

    def block(self) -> Block:
        """Return the one block marked `run <test_id>`; fail naming what was found instead."""
        found = self.blocks()
        assert len(found) == 1, (
            f"expected one README block marked `docs-test: run {self.test_id}`, found "
            f"{[block.where for block in found] or 'none'}"
        )
        return found[0]


def claim(test_id: str) -> Claim:
    """Declare (at import) that a test runs the blocks marked `run <test_id>`, so the marker check knows it."""
    CLAIMED.add(test_id)
    return Claim(test_id)
