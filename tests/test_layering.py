"""Who may import whom: the controller's folder holds the controller, and no import runs back up.

The in-cluster controller (serving/rollout: spec, analysis, loop, record, edges) is what the chart runs; the
one-machine stack (serving/embedded) runs it, the retraining triggers (pipelines/triggers) and the model
service run beside it. An import from the controller into the stack that runs it, or a circle between two
of its modules, would make the image carry and load what it never uses, and every change a change to both.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (lazy imports inside functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def platform_modules(folder: str) -> dict[str, set[str]]:
    """The modules under `folder` (tests excluded) and what each imports."""
    return {
        module_name(path): imports_of(path)
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "tests" not in path.relative_to(ROOT).parts
    }


def importers(folder: str, prefix: str) -> dict[str, list[str]]:
    """The modules under `folder` that import a module under `prefix`, with what they import of it."""
    found = {
        module: sorted(name for name in names if name.startswith(prefix))
        for module, names in platform_modules(folder).items()
    }
    return {module: names for module, names in found.items() if names}


def test_the_controller_never_imports_the_stack_that_runs_it_on_one_machine() -> None:
    assert importers("serving/rollout", "serving.embedded") == {}


def test_nothing_in_the_platform_imports_the_one_machine_stack() -> None:
    for folder in ("components", "pipelines", "serving/model_service", "serving/gitops", "serving/dashboards"):
        assert importers(folder, "serving.embedded") == {}, folder


def test_the_retraining_triggers_do_not_reach_into_the_controller() -> None:
    assert importers("pipelines", "serving.rollout") == {}


def test_the_controllers_modules_import_each_other_without_a_circle() -> None:
    graph = {
        module: {name for name in names if name.startswith("serving.rollout.")}
        for module, names in platform_modules("serving/rollout").items()
    }

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for name in graph.get(start, set()):
            if name == goal or (name not in seen and reaches(name, goal, seen | {name})):
                return True
        return False

    circles = sorted(module for module in graph if reaches(module, module, {module}))
    assert circles == []
