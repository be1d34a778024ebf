"""The gate's report: baseline, candidates and champion side by side on the same test rows, and the decision.

Logged to the parent run as `gate/report.md` and printed in the step's log, so whoever asks "why was this
(not) proposed?" sees every number the gate compared, not only the winner's. For classifiers a second table
shows how each candidate's probabilities become answers (`common/decision.py`): its calibration, the ECE on
the validation rows before and after it, the test rows' ECE, the binary threshold with its objective, and the
rows the saved model was fitted on (training + validation when refitted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from components.common.decision import Decision
from components.common.task import Task, greater_is_better
from components.validate.thresholds import flag

if TYPE_CHECKING:
    from components.gate.config import GateConfig
    from components.gate.core import Candidate
    from components.gate.core import Decision as Verdict


def _row(label: str, metrics: dict[str, float], columns: Sequence[str]) -> str:
    cells = [f"{metrics[name]:.4f}" if name in metrics else "" for name in columns]
    return "| " + " | ".join([label, *cells]) + " |"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def fitted_on(decision: Decision) -> str:
    """Return which rows the saved model was fitted on (components/search/refit.py), as the report shows it."""
    if decision.fit_rows is None:
        return ""
    return f"{decision.fit_rows} rows, " + ("training + validation (refit)" if decision.refit else "training")


def decision_table(candidates: Sequence[Candidate]) -> list[str]:
    """Return the Markdown lines of each candidate's decision: calibration, ECE and threshold."""
    lines = [
        "| model | calibration | ECE validation, as fitted | ECE validation, calibrated | ECE test | threshold "
        "| fitted on |",
        "|---|---|---|---|---|---|---|",
    ]
    for candidate in candidates:
        decision = Decision.from_metadata(candidate.decision) if candidate.decision else Decision()
        threshold = (
            f"{decision.threshold:.4f} ({decision.objective})"
            if decision.threshold is not None
            else "0.5 (none stored)"
        )
        calibration = decision.calibration if candidate.decision else "none (none stored)"
        cells = [
            *(candidate.name, calibration, _number(decision.ece_before), _number(decision.ece_after)),
            *(_number(candidate.metrics.get("ece")), threshold if candidate.task == "binary" else "most probable"),
            fitted_on(decision),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def gate_report(
    task: Task,
    config: GateConfig,
    decision: Verdict,
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
    if task.is_classification:
        lines += ["", "How each candidate's probabilities become answers:", "", *decision_table(candidates)]
    lines += ["", f"**Decision**: {decision.reason}", ""]
    return "\n".join(lines)
