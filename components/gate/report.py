"""The gate's report: baseline, candidates and champion side by side on the same test rows, and the decision.

Logged to the parent run as `gate/report.md` and printed in the step's log, so whoever asks "why was this
(not) proposed?" sees every number the gate compared, not only the winner's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from components.common.task import Task, greater_is_better
from components.validate.thresholds import flag

if TYPE_CHECKING:
    from components.gate.config import GateConfig
    from components.gate.core import Candidate, Decision


def _row(label: str, metrics: dict[str, float], columns: Sequence[str]) -> str:
    cells = [f"{metrics[name]:.4f}" if name in metrics else "" for name in columns]
    return "| " + " | ".join([label, *cells]) + " |"


def gate_report(
    task: Task,
    config: GateConfig,
    decision: Decision,
    candidates: Sequence[Candidate],
    baseline: tuple[str, dict[str, float]] | None,
    champion: tuple[str, dict[str, float]] | None,
) -> str:
    """Return the report as Markdown: settings, one row per model (baseline, candidates, champion), decision."""
    primary = task.primary_metric(config.primary_metric)
    floors = config.floors(task)
    named = ", ".join(f"{metric} ≥ {floor}" for metric, floor in floors.items()) or "none"
    floor_flags = ", ".join(
        flag(p) for p in (("min_roc_auc", "min_accuracy") if task.is_classification else ("min_r2",))
    )
    columns = list(task.metrics)
    lines = [
        f"# Gate {'PASSED' if decision.passed else 'REJECTED'}",
        "",
        f"Primary metric `{primary}` ({'higher' if greater_is_better(primary) else 'lower'} is better), margin "
        f"{config.margin} (`{flag('margin')}`); floors: {named} (`{floor_flags}`).",
        "",
        "| model | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    if baseline is not None:
        lines.append(_row(f"baseline: {baseline[0]}", baseline[1], columns))
    for candidate in candidates:
        mark = " (winner)" if candidate.name == decision.winner.name else ""
        lines.append(_row(f"{candidate.name}{mark}", candidate.metrics, columns))
    lines.append(
        _row(champion[0], champion[1], columns) if champion else "| champion: none yet |" + " |" * len(columns)
    )
    lines += ["", f"**Decision**: {decision.reason}", ""]
    return "\n".join(lines)
