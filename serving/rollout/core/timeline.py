"""A rollout's history drawn as one picture: canary weight over time, every check's verdicts, the decision.

The JSON history on the version's run says everything, but nobody reads forty intervals of it to see where a
rollout went wrong. The picture reads the same history (`RolloutRecorder.history`), from either loop: the
one-shot controller records `shadow` and `weight` events, the cluster's reconcile loop only `analysis` events,
each with the weight it judged; both end with the outcome event. Drawn on a `Figure` with its own Agg canvas,
never through pyplot: the controller draws from a thread, and pyplot's global state is not thread-safe.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from components.common.tracking import CANCELED, INITIALIZED, PROMOTED, ROLLED_BACK
from serving.rollout.core.results import FAIL, NO_DATA, NOT_APPLICABLE, PASS, PENDING

Event = Mapping[str, Any]
OUTCOMES = {PROMOTED: "tab:green", ROLLED_BACK: "tab:red", CANCELED: "tab:grey", INITIALIZED: "tab:blue"}
# Marker and colour per check status; a status not listed (a newer one) is drawn as `other`.
STATUS_STYLE: dict[str, tuple[str, str]] = {
    PASS: ("o", "tab:green"),
    FAIL: ("X", "tab:red"),
    NO_DATA: ("s", "tab:orange"),
    PENDING: ("o", "lightgrey"),
    NOT_APPLICABLE: ("_", "grey"),
}
OTHER_STYLE = ("d", "tab:purple")
SMALL: dict[str, Any] = {"fontsize": "x-small", "va": "bottom", "color": "dimgrey"}
SHADOW = "shadow"


def seconds(history: Sequence[Event]) -> list[float]:
    """Return each event's time in seconds since the first one (the history's times are ISO-8601)."""
    times = [datetime.fromisoformat(str(event["at"])) for event in history]
    return [(time - times[0]).total_seconds() for time in times]


def weights(history: Sequence[Event], times: Sequence[float]) -> tuple[list[float], list[float]]:
    """Return the canary weight as (times, weights) steps: every event that names a weight, 0 at the end."""
    xs, ys = [], []
    for at, event in zip(times, history, strict=True):
        if "weight" in event:
            xs.append(at)
            ys.append(float(event["weight"]))
        elif event["event"] in OUTCOMES:
            xs.append(at)
            ys.append(0.0)
    return xs, ys


def shadow_span(history: Sequence[Event], times: Sequence[float]) -> tuple[float, float] | None:
    """Return when the shadow phase began and ended, None without one.

    It begins at the `shadow` event (the controller), or at the first interval judged at weight 0 (the
    reconcile loop records no such event), and ends at the first event with a positive weight or the outcome.
    """
    begin = None
    for at, event in zip(times, history, strict=True):
        kind = event["event"]
        if begin is None and (kind == SHADOW or (kind == "analysis" and event.get("weight") == 0)):
            begin = at
        elif begin is not None and (float(event.get("weight", 0)) > 0 or kind in OUTCOMES):
            return begin, at
    return None if begin is None else (begin, times[-1])


def draw_weight(axes: Axes, history: Sequence[Event], times: Sequence[float]) -> None:
    """Draw the weight as a step line, with the shadow phase shaded."""
    xs, ys = weights(history, times)
    if xs:
        axes.step(xs, ys, where="post", color="tab:blue", linewidth=2, label="canary weight")
    span = shadow_span(history, times)
    if span is not None:
        axes.axvspan(*span, color="tab:purple", alpha=0.12, label="shadow (mirrored traffic)")
    axes.set(ylabel="canary weight (%)", ylim=(-5, 105))
    axes.grid(axis="y", alpha=0.3)
    if xs or span:
        axes.legend(loc="upper left", fontsize="small")


def latest_evidence(history: Sequence[Event]) -> dict[str, Mapping[str, Any]]:
    """Return each check's latest comparison with the stable (checks with alpha and minEffect)."""
    found: dict[str, Mapping[str, Any]] = {}
    for event in history:
        for check in event.get("checks", []) if event["event"] == "analysis" else []:
            if check.get("evidence"):
                found[str(check["name"])] = check["evidence"]
    return found


def evidence_label(evidence: Mapping[str, Any]) -> str:
    """Return one comparison in a line: decision, bound crossed, canary - stable and its interval, sample sizes."""
    low, high = (
        (-math.inf if evidence["interval"][0] is None else evidence["interval"][0]),
        (math.inf if evidence["interval"][1] is None else evidence["interval"][1]),
    )
    statistic = math.nan if evidence["statistic"] is None else evidence["statistic"]
    crossed = f" ({evidence['crossed']})" if evidence.get("crossed") else ""
    return (
        f"{evidence['decision']}{crossed}: {evidence.get('compared') or 'canary - stable'} {statistic:+.3g} "
        f"in [{low:.3g}, {high:.3g}], n {evidence['n_a']:g} canary / {evidence['n_b']:g} stable, "
        f"alpha {evidence['alpha']:g}"
    )


def draw_checks(axes: Axes, history: Sequence[Event], times: Sequence[float]) -> None:
    """Draw one row per check, one marker per interval, shaped and coloured by the check's status."""
    rows: dict[str, int] = {}
    points: dict[str, tuple[list[float], list[int]]] = {}
    for at, event in zip(times, history, strict=True):
        if event["event"] != "analysis":
            continue
        for check in event.get("checks", []):
            row = rows.setdefault(str(check["name"]), len(rows))
            xs, ys = points.setdefault(str(check["status"]), ([], []))
            xs.append(at)
            ys.append(row)
    for status, (xs, ys) in sorted(points.items()):
        marker, colour = STATUS_STYLE.get(status, OTHER_STYLE)
        axes.scatter(xs, ys, marker=marker, color=colour, s=60, label=status, zorder=3)
    for name, evidence in latest_evidence(history).items():
        if name in rows:
            axes.text(0.005, rows[name] - 0.3, evidence_label(evidence), transform=axes.get_yaxis_transform(), **SMALL)
    axes.set_yticks(range(len(rows)), list(rows))
    axes.set_ylim(-0.7, max(len(rows), 1) - 0.3)
    axes.invert_yaxis()
    axes.set_xlabel("seconds since the rollout started")
    axes.grid(axis="x", alpha=0.3)
    if points:
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", title="check")


def outcome_of(history: Sequence[Event]) -> tuple[str, str]:
    """Return the decision and its reason (`in progress` when the history has none yet)."""
    for event in reversed(history):
        if event["event"] in OUTCOMES:
            return str(event["event"]), str(event.get("reason", ""))
    return "in progress", ""


def timeline_figure(history: Sequence[Event], subject: str) -> Figure:
    """Return the figure of one rollout's history; `subject` names it (model, version, environment)."""
    if not history:
        raise ValueError("the rollout history is empty: nothing to draw")
    times = seconds(history)
    checks = {c["name"] for e in history if e["event"] == "analysis" for c in e.get("checks", [])}
    figure = Figure(figsize=(11, 4.5 + 0.35 * len(checks)), layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[2, max(len(checks), 1)])
    draw_weight(top, history, times)
    draw_checks(bottom, history, times)
    decision, reason = outcome_of(history)
    colour = OUTCOMES.get(decision, "black")
    for axes in (top, bottom):
        axes.axvline(times[-1], color=colour, linestyle="--", linewidth=1.5)
    top.annotate(
        decision.replace("_", " ").upper(),
        (times[-1], 100),
        xytext=(-4, -4),
        textcoords="offset points",
        ha="right",
        va="top",
        color=colour,
        fontweight="bold",
    )
    span = max(times[-1], 1.0)
    top.set_xlim(-0.02 * span, 1.02 * span)
    headline = f"{subject}: {decision.replace('_', ' ')}"
    figure.suptitle("\n".join(textwrap.wrap(f"{headline} - {reason}" if reason else headline, 110)), color=colour)
    return figure
