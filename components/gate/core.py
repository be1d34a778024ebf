"""Gate: pick the best candidate and decide whether it may be proposed, with MLflow's validation API.

The task's primary metric (ROC AUC for classification, R² for regression, or the configured one) picks
the winner, which must beat, by `margin` in the metric's own direction and on the same test rows:
1. the naive baseline (the prior, or the mean: `components/evaluate/baseline.py`), always — so a first
   champion on a hard problem is judged by what it learned, not by a fixed number;
2. the current champion, when there is one.
Absolute floors (ROC AUC and accuracy, or R²) are opt-in: none unless set. Every refusal names the flag that
changes it. Each candidate comes with its decision (`common/decision.py`: calibration, ECE before and after on
the validation rows, binary threshold), which the report shows beside the test ECE; the champion is scored
with its own threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import MetricThreshold
from mlflow.models.evaluation import EvaluationResult

from components.common.task import Task, TaskError, greater_is_better
from components.common.tracking import CHALLENGER, CHAMPION
from components.gate.config import FLOOR_PARAMETERS, GateConfig
from components.validate.thresholds import flag


@dataclass(frozen=True)
class Candidate:
    """One trained candidate, the task it solves and its test metrics."""

    name: str
    metrics: dict[str, float]
    model_uri: str
    run_id: str
    task: str
    # The digest of the files the training step logged (`signing.manifest_digest`); register checks it.
    files_digest: str
    # `plinth.decision` of its model (`decision.Decision.metadata()`), None for a model saved without one.
    decision: dict[str, Any] | None = None


@dataclass(frozen=True)
class Decision:
    """What the gate decided, and why, in words a person can read."""

    passed: bool
    winner: Candidate
    alias: str
    reason: str


def tie_breaker(task: Task) -> str:
    """Return the metric that breaks a tie on the primary metric (lower is better)."""
    return "log_loss" if task.is_classification else "rmse"


def pick_winner(candidates: list[Candidate], task: Task, primary: str) -> Candidate:
    """Return the candidate best on `primary` (in its direction); ties go to the lower log loss / RMSE."""
    if not candidates:
        raise ValueError("no candidates to choose from")
    sign = 1.0 if greater_is_better(primary) else -1.0
    second = tie_breaker(task)
    return max(candidates, key=lambda c: (sign * c.metrics[primary], -c.metrics[second]))


def _validate(
    thresholds: dict[str, MetricThreshold], winner: Candidate, baseline: dict[str, float] | None
) -> str | None:
    """Return MLflow's reason when the winner fails `thresholds` (against `baseline`'s metrics), else None."""
    against = EvaluationResult(metrics=baseline, artifacts={}) if baseline else None
    try:
        mlflow.validate_evaluation_results(thresholds, EvaluationResult(metrics=winner.metrics, artifacts={}), against)
    except MlflowException as failure:
        return " ".join(failure.message.split())
    return None


def beats(primary: str, margin: float) -> dict[str, MetricThreshold]:
    """Return the MLflow threshold that asks to beat a reference by `margin` in the metric's direction."""
    return {primary: MetricThreshold(min_absolute_change=margin, greater_is_better=greater_is_better(primary))}


def decide(
    winner: Candidate,
    task: Task,
    config: GateConfig,
    champion_metrics: dict[str, float] | None,
    champion_version: str | None,
    baseline: dict[str, float] | None = None,
    baseline_label: str = "baseline",
) -> Decision:
    """Check the winner against the floors set, the baseline and the champion, in that order; never raises."""
    primary = task.primary_metric(config.primary_metric)
    value = winner.metrics[primary]
    floors = config.floors(task)
    if floors:
        thresholds = {
            metric: MetricThreshold(threshold=floor, greater_is_better=True) for metric, floor in floors.items()
        }
        failed = _validate(thresholds, winner, None)
        if failed:
            named = ", ".join(
                f"{metric} ≥ {floor} ({flag(FLOOR_PARAMETERS[metric])})" for metric, floor in floors.items()
            )
            return Decision(False, winner, "", f"{winner.name} is below a floor you set ({named}): {failed}")
    direction = "above" if greater_is_better(primary) else "below"
    margin = f"the margin {config.margin} ({flag('margin')})"
    if baseline is not None:
        failed = _validate(beats(primary, config.margin), winner, baseline)
        if failed:
            reason = (
                f"{winner.name} {primary} {value:.4f} does not beat the naive baseline, the {baseline_label} "
                f"({primary} {baseline[primary]:.4f}), by {margin}: it learned nothing the {baseline_label} "
                f"does not know. {failed}"
            )
            return Decision(False, winner, "", reason)
    naive = f"the naive baseline, the {baseline_label} ({baseline[primary]:.4f})" if baseline is not None else ""
    if champion_metrics is None:
        beaten = f" beats {naive} by at least {config.margin} ({direction});" if naive else ""
        reason = f"no champion yet: {winner.name} ({primary} {value:.4f}){beaten} it becomes {CHAMPION} directly"
        return Decision(True, winner, CHAMPION, reason)
    failed = _validate(beats(primary, config.margin), winner, champion_metrics)
    if failed:
        reason = (
            f"{winner.name} {primary} {value:.4f} does not beat champion v{champion_version} "
            f"({champion_metrics[primary]:.4f}) by {margin}. {failed}"
        )
        return Decision(False, winner, "", reason)
    reason = (
        f"{winner.name} {primary} {value:.4f} beats champion v{champion_version} "
        f"({champion_metrics[primary]:.4f}){f' and {naive}' if naive else ''} by at least {config.margin} "
        f"({direction}); proposed as {CHALLENGER}"
    )
    return Decision(True, winner, CHALLENGER, reason)


class ChampionScoringError(RuntimeError):
    """The champion cannot be scored on this run's test rows; the message says why."""


def champion_scores(
    tracking_uri: str, model_name: str, test_path: str, task: Task
) -> tuple[dict[str, float] | None, str | None]:
    """Score the current champion on this run's test rows; (None, None) when there is no champion.

    Raises:
        ChampionScoringError: the champion exists but cannot answer these rows for this task.
    """
    import pandas as pd
    from mlflow.models import get_model_info

    from components.common import modeling, tracking
    from components.common.decision import threshold_of
    from components.common.features import split_target
    from components.evaluate.core import evaluate_model

    client = tracking.connect(tracking_uri)
    version = tracking.champion_version(client, model_name)
    if version is None:
        return None, None
    uri = f"models:/{model_name}/{version}"  # resolved against the registry `connect` made the default
    test = pd.read_parquet(test_path)
    try:
        metadata = get_model_info(uri).metadata
        profile = modeling.profile_from_metadata(metadata, f"{model_name} v{version}")
        features, truth = split_target(test, profile)
        scores, _ = evaluate_model(modeling.load_model(uri), task, features, truth, threshold_of(metadata))
    except (MlflowException, ValueError, KeyError) as error:
        raise ChampionScoringError(f"champion v{version} cannot be scored on this run's test rows: {error}") from error
    return scores, version


def run(
    results_json: list[str],
    test_path: str,
    profile_path: str,
    tracking_uri: str,
    model_name: str,
    parent_run_id: str,
    config: GateConfig,
) -> Decision:
    """Step entry: choose the winner, score baseline and champion, decide, and record it all on the parent run."""
    import json

    import pandas as pd

    from components.common import attest, tracking
    from components.common.candidate import load_profile_file
    from components.common.features import split_target
    from components.evaluate.baseline import baseline_name, baseline_scores
    from components.gate.report import gate_report

    profile = load_profile_file(profile_path)
    task = profile.task
    client = tracking.connect(tracking_uri)
    try:
        primary = task.primary_metric(config.primary_metric)
    except TaskError as error:
        tracking.mark_failed(client, parent_run_id, "gate", str(error))
        raise
    candidates = [Candidate(**json.loads(result)["candidate"]) for result in results_json]
    winner = pick_winner(candidates, task, primary)
    _, truth = split_target(pd.read_parquet(test_path), profile)
    baseline = baseline_scores(profile, truth)
    label = baseline_name(profile)
    print(f"gate: the naive baseline ({label}) scores {primary} {baseline[primary]:.4f} on this test set")
    champion: tuple[str, dict[str, float]] | None = None
    try:
        champion_metrics, champion_version = champion_scores(tracking_uri, model_name, test_path, task)
    except ChampionScoringError as error:
        decision = Decision(False, winner, "", str(error))
    else:
        if champion_metrics is not None:
            champion = (f"champion v{champion_version}", champion_metrics)
            print(
                f"gate: champion v{champion_version} scores {primary} {champion_metrics[primary]:.4f} on this test set"
            )
        decision = decide(winner, task, config, champion_metrics, champion_version, baseline, label)
    report = gate_report(task, config, decision, candidates, (label, baseline), champion)
    client.log_text(parent_run_id, report, "gate/report.md")
    print(report)
    for key, value in baseline.items():
        client.log_metric(parent_run_id, f"baseline_{key}", value)
    client.set_tag(parent_run_id, tracking.TAG_WINNER, winner.name)
    client.set_tag(parent_run_id, tracking.TAG_DECISION, "passed" if decision.passed else "rejected")
    client.set_tag(parent_run_id, tracking.TAG_REASON, decision.reason)
    client.set_tag(parent_run_id, attest.TAG_PRIMARY, primary)
    # What the signer reads before it signs the winner: which run won, by which margin (components/common/attest.py).
    client.set_tag(parent_run_id, attest.TAG_WINNER_RUN, winner.run_id)
    client.set_tag(parent_run_id, attest.TAG_MARGIN, str(config.margin))
    for key, value in winner.metrics.items():
        client.log_metric(parent_run_id, f"winner_{key}", value)
    print(f"gate: {'PASSED' if decision.passed else 'REJECTED'}: {decision.reason}")
    if not decision.passed:
        print("gate: no registry change")
        client.set_terminated(parent_run_id, status="FINISHED")
    return decision
