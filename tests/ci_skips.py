"""CI never goes green on a check it skipped: under `CI=true`, a test that skips for a missing tool fails.

On a developer's machine a test whose tool is absent (promtool, a Prometheus server, helm, hadolint, actionlint…)
skips and says which tool and how to get it. In CI, where `make setup` installs every one of them, the same skip
would be a check that never ran reported as a pass; so when `CI` is true (GitHub Actions sets it), this plugin
turns a skip whose reason names a tool from `TOOLS` together with a word saying it is missing (`MISSING`) into a
failure, wherever the skip was raised: `pytest.skip(...)`, a `skipif` marker, a fixture, a module-level skip.
The root `conftest.py` loads it for every test folder (`pytest_plugins`); tests/test_ci_skips.py runs pytest on a
tiny test file with and without `CI=true` to prove it, and holds every skip reason in the tree to one of the two
kinds (a tool, or listed in `NOT_A_TOOL` there).

The one skip that names missing tools and stays a skip is the kind e2e's (no Docker, no kind): `make test`, what
CI runs, deselects the `e2e` marker, so the skip never reaches a CI report, and .github/workflows/e2e.yaml, the
run that has Docker, fails instead of skipping (`PLINTH_E2E_REQUIRED`). A test marked `e2e` is therefore left
alone here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Mapping
from typing import Any

import pytest

# Programs (and engines) some test needs and `make setup` / CI installs; matched as whole words in a skip reason.
TOOLS = (
    "actionlint",
    "alertmanager",
    "check-jsonschema",
    "checkov",
    "docker",
    "hadolint",
    "helm",
    "initdb",
    "kind",
    "kserve",
    "kubectl",
    "kustomize",
    "moto",
    "node",
    "npm",
    "pg_ctl",
    "postgres",
    "postgresql",
    "prometheus",
    "prometheus-alertmanager",
    "promtool",
    "zizmor",
)
TOOL = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, sorted(TOOLS, key=len, reverse=True))) + r")(?![\w])", re.I)
MISSING = re.compile(
    r"\b(not installed|not found|not on PATH|needs?|missing|requires?|unavailable|no \S+ binar(y|ies))\b", re.I
)
TRUE_WORDS = frozenset({"1", "true", "yes"})


def under_ci(env: Mapping[str, str] | None = None) -> bool:
    """Return whether this run is CI's: `CI` set to true (GitHub Actions, most CI services), 1 or yes."""
    return (os.environ if env is None else env).get("CI", "").strip().lower() in TRUE_WORDS


def missing_tool(reason: str) -> str | None:
    """Return the tool a skip reason says is missing, None for a skip of another kind."""
    tool = TOOL.search(reason)
    return tool.group(1) if tool and MISSING.search(reason) else None


def skip_reason(longrepr: Any) -> str:
    """Return the reason of a skipped report (its longrepr is `(path, line, "Skipped: reason")`)."""
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return str(text).removeprefix("Skipped: ")


def _fail_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Turn the skipped report into a failed one when CI runs and its reason names a missing tool."""
    if not (report.skipped and under_ci()) or hasattr(report, "wasxfail"):
        return
    reason = skip_reason(report.longrepr)
    tool = missing_tool(reason)
    if tool is None:
        return
    report.outcome = "failed"
    report.longrepr = (
        f"CI=true: this test skipped because {tool} is missing, and CI must run every check "
        f"(make setup installs the tools): {reason}"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """A test (or its fixtures, or its skipif marker) skipped for a missing tool: a failure under CI."""
    outcome = yield
    if item.get_closest_marker("e2e") is None:  # the kind e2e's skip: see the module docstring
        _fail_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    """A whole module skipped for a missing tool (`pytest.skip(..., allow_module_level=True)`): a failure under CI."""
    outcome = yield
    _fail_in_ci(outcome.get_result())
