"""`make promote FROM=staging TO=prod`, typed on a dirty tree, refuses with its one documented line.

The refusal is tried in a throwaway checkout of the working tree (tests/docs/checkout.py) with one
uncommitted edit, never in the real one: a promotion that went through would commit there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.as_typed import UserShell
from tests.docs.checkout import git, working_tree_copy
from tests.docs.readme import Block, claim

PROMOTE = claim("promote-dirty-tree")


@pytest.fixture(scope="module")
def dirty_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the working tree with one uncommitted edit, as a user has after touching a file."""
    repo = working_tree_copy(tmp_path_factory.mktemp("promote") / "plinth")
    with (repo / "README.md").open("a") as readme:
        readme.write("\nan edit not yet committed\n")
    return repo


@pytest.mark.parametrize("block", PROMOTE.blocks(), ids=lambda block: block.where)
def test_promote_on_a_dirty_tree_refuses_with_one_line_and_changes_nothing(
    block: Block, dirty_copy: Path, tmp_path: Path
) -> None:
    head = git(dirty_copy, "rev-parse", "HEAD")
    desired = (dirty_copy / "manifests/overlays/prod/desired.yaml").read_text()
    shell = UserShell(home=tmp_path / "home", plinth_home=tmp_path / "plinth-home", cwd=dirty_copy)
    typed = shell.run(block, timeout=300)
    said = [line for line in typed.output.splitlines() if line.startswith("promote:")]
    assert said == [f"promote: working tree of {dirty_copy} is not clean (1 changed paths): commit or stash first"], (
        typed.tail()
    )
    assert typed.returncode == 2, "make reports the failed recipe"
    assert "promote] Error 1" in typed.output, "the promotion itself exits 1 (refused), as documented"
    assert git(dirty_copy, "rev-parse", "HEAD") == head
    assert (dirty_copy / "manifests/overlays/prod/desired.yaml").read_text() == desired
    assert not shell.plinth_home.exists(), "the refusal comes before any registry is opened"
