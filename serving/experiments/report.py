"""The experiment's record: effect size, interval, samples, duration and decision, in MLflow and as a plot.

One run per experiment in the MLflow experiment `plinth-experiments`: the variants' versions, weights and
the spec's alpha / minEffect as params; per treatment its final effect, interval and samples as metrics (and
every look as a step of them); the decision, winner and reason as tags; the looks as JSON and a PNG beside
it. The plot is drawn on a `Figure` with its own Agg canvas, as the rollout's timeline is, never through
pyplot: a controller may draw it from a thread.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from components.common.tracking import ensure_experiment
from serving.experiments.decide import Decision
from serving.experiments.spec import ExperimentSpec

EXPERIMENT = "plinth-experiments"
# When the experiment began (Unix ms), on runs of a loop given its start: how a restarted loop finds its decision.
SINCE_TAG = "plinth.experiment.since"
Look = Mapping[str, Any]


@dataclass
class History:
    """Every look of one experiment: when, each variant's samples and mean, each treatment's interval."""

    looks: list[dict[str, Any]]

    def add(self, elapsed_s: float, decision: Decision, guard: str | None = None) -> None:
        """Record one look at the outcomes (and the guards' verdict, when one stopped a variant)."""
        look: dict[str, Any] = {"t": round(elapsed_s, 3), "outcome": decision.outcome, "reason": guard or ""}
        for comparison in decision.comparisons:
            low, high = comparison.result.interval
            look[comparison.treatment] = {
                "verdict": comparison.verdict,
                "effect": comparison.effect,
                "low": low,
                "high": high,
                "n": comparison.tally.n,
                "n_control": comparison.control.n,
                "mean": comparison.tally.mean,
                "mean_control": comparison.control.mean,
            }
        self.looks.append(look)


def figure(spec: ExperimentSpec, looks: Sequence[Look], measure: str, title: str) -> Figure:
    """Draw each treatment's effect on the control with its confidence sequence, and the samples over time."""
    fig = Figure(figsize=(10, 6), layout="constrained")
    FigureCanvasAgg(fig)
    effect, samples = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    times = [float(look["t"]) for look in looks]
    for treatment in (t.name for t in spec.treatments):
        rows = [look.get(treatment, {}) for look in looks]
        finite = [(t, r) for t, r in zip(times, rows, strict=True) if r and abs(r["high"] - r["low"]) < 1e9]
        if finite:
            xs = [t for t, _ in finite]
            effect.plot(xs, [r["effect"] for _, r in finite], marker=".", label=f"{treatment} - {spec.control}")
            effect.fill_between(xs, [r["low"] for _, r in finite], [r["high"] for _, r in finite], alpha=0.25)
        samples.plot(times, [r.get("n", 0) for r in rows], marker=".", label=treatment)
    samples.plot(
        times,
        [max((r.get("n_control", 0) for r in look.values() if isinstance(r, dict)), default=0) for look in looks],
        marker=".",
        label=f"{spec.control} (control)",
    )
    for bound in (-spec.min_effect, spec.min_effect):
        effect.axhline(bound, color="grey", linestyle=":", linewidth=1)
    effect.axhline(0.0, color="black", linewidth=0.8)
    effect.set_ylabel(f"difference in {measure}\n(> 0: treatment better)")
    if effect.get_legend_handles_labels()[0]:  # no interval yet (a guard stopped it at once): no legend
        effect.legend(loc="upper left")
    samples.set_ylabel("outcomes")
    samples.set_xlabel("seconds since the experiment started")
    samples.legend(loc="upper left")
    fig.suptitle(title, fontsize=10)
    return fig


def log_experiment(
    client: MlflowClient,
    tracking_uri: str,
    spec: ExperimentSpec,
    versions: Mapping[str, str],
    decision: Decision,
    history: History,
    duration_s: float,
    measure: str,
    since_ms: int | None = None,
) -> str:
    """Log the experiment as one MLflow run with its plot; return the run id.

    `since_ms`, when the experiment's start was given, is tagged (SINCE_TAG) in the same call as the decision,
    so a restarted loop finds the decision already recorded and never records a second one.
    """
    experiment_id = ensure_experiment(client, EXPERIMENT, tracking_uri)
    run = client.create_run(experiment_id, run_name=spec.name)
    run_id = run.info.run_id
    params = {
        "outcome": spec.outcome,
        "measure": measure,
        "alpha": spec.alpha,
        "minEffect": spec.min_effect,
        "maxDuration_s": spec.max_duration,
        "control": spec.control,
        "assignment.header": spec.header,
    }
    for variant in spec.variants:
        params[f"variant.{variant.name}.version"] = versions[variant.name]
        params[f"variant.{variant.name}.weight"] = variant.weight
    metrics = {"duration_s": duration_s}
    for comparison in decision.comparisons:
        low, high = comparison.result.interval
        prefix = comparison.treatment
        metrics |= {
            f"{prefix}.effect": comparison.effect,
            f"{prefix}.interval_low": low,
            f"{prefix}.interval_high": high,
            f"{prefix}.samples": comparison.tally.n,
            f"{prefix}.samples_control": comparison.control.n,
        }
    now = run.info.start_time
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if abs(float(v)) < float("inf")],
        params=[Param(k, str(v)) for k, v in params.items()],
        tags=[
            RunTag("plinth.experiment.decision", decision.outcome),
            RunTag("plinth.experiment.winner", decision.winner or ""),
            RunTag("plinth.experiment.reason", decision.reason[:5000]),
            *([RunTag(SINCE_TAG, str(since_ms))] if since_ms is not None else []),
        ],
    )
    client.log_text(run_id, json.dumps(history.looks, indent=1), f"experiment/{spec.name}.json")
    title = f"{spec.name}: {decision.outcome}" + (f" ({decision.winner})" if decision.winner else "")
    client.log_figure(run_id, figure(spec, history.looks, measure, title), f"experiment/{spec.name}.png")
    client.set_terminated(run_id)
    return run_id
