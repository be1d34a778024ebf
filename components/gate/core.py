"""Gate: pick the best candidate and decide whether it may be proposed, with MLflow's validation API.

The task's primary metric (ROC AUC for classification, R² for regression, or the configured one) picks
the winner and is compared with the current champion, scored on the same test rows: the winner must beat
it by `margin` in the metric's own direction. Absolute floors apply per task (ROC AUC and accuracy, or R²).
Without a champion the winner becomes champion directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import MetricThreshold
from mlflow.models.evaluation import EvaluationResult

from components.common.task import Task, TaskError, greater_is_better
from components.common.tracking import CHALLENGER, CHAMPION


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


@dataclass(frozen=True)
class GateConfig:
    """Pipeline parameters of the gate."""

    min_roc_auc: float
    min_accuracy: float
    margin: float
    min_r2: float = 0.0
    primary_metric: str = ""

    def __post_init__(self) -> None:
        """Reject settings that would make the gate meaningless."""
        if self.margin <= 0:
            raise ValueError(f"margin must be > 0 (the candidate must beat the champion), got {self.margin}")
        for name in ("min_roc_auc", "min_accuracy"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.min_r2 > 1.0:
            raise ValueError(f"min_r2 must be at most 1, got {self.min_r2}")

    def floors(self, task: Task) -> dict[str, float]:
        """Return the absolute thresholds (higher is better for each) that apply to `task`."""
        if task.is_classification:
            return {"roc_auc": self.min_roc_auc, "accuracy": self.min_accuracy}
        return {"r2": self.min_r2}


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


def thresholds(config: GateConfig, task: Task, primary: str, against_champion: bool) -> dict[str, MetricThreshold]:
    """Return MLflow metric thresholds; the margin applies to the primary metric, only against a champion."""
    result = {
        metric: MetricThreshold(threshold=floor, greater_is_better=True)
        for metric, floor in config.floors(task).items()
    }
    if against_champion:
        result[primary] = MetricThreshold(
            threshold=config.floors(task).get(primary),
            min_absolute_change=config.margin,
            greater_is_better=greater_is_better(primary),
        )
    return result


def decide(
    winner: Candidate,
    task: Task,
    config: GateConfig,
    champion_metrics: dict[str, float] | None,
    champion_version: str | None,
) -> Decision:
    """Validate the winner against thresholds and the champion; never raises on a failed gate."""
    primary = task.primary_metric(config.primary_metric)
    baseline = EvaluationResult(metrics=champion_metrics, artifacts={}) if champion_metrics else None
    try:
        mlflow.validate_evaluation_results(
            thresholds(config, task, primary, baseline is not None),
            EvaluationResult(metrics=winner.metrics, artifacts={}),
            baseline,
        )
    except MlflowException as failure:
        return Decision(False, winner, "", " ".join(failure.message.split()))
    value = winner.metrics[primary]
    if champion_metrics is None:
        reason = f"no champion yet: {winner.name} ({primary} {value:.4f}) becomes {CHAMPION} directly"
        return Decision(True, winner, CHAMPION, reason)
    direction = "above" if greater_is_better(primary) else "below"
    reason = (
        f"{winner.name} {primary} {value:.4f} beats champion v{champion_version} "
        f"({champion_metrics[primary]:.4f}) by at least {config.margin} ({direction}); proposed as {CHALLENGER}"
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
    from components.common.features import split_target
    from components.evaluate.core import evaluate_model

    client = tracking.connect(tracking_uri)
    version = tracking.champion_version(client, model_name)
    if version is None:
        return None, None
    uri = f"models:/{model_name}/{version}"  # resolved against the registry `connect` made the default
    test = pd.read_parquet(test_path)
    try:
        profile = modeling.profile_from_metadata(get_model_info(uri).metadata, f"{model_name} v{version}")
        features, truth = split_target(test, profile)
        scores, _ = evaluate_model(modeling.load_model(uri), task, features, truth)
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
    """Step entry: choose the winner, score the champion, decide, and record the decision on the parent run."""
    import json

    from components.common import attest, tracking
    from components.common.candidate import load_profile_file

    task = load_profile_file(profile_path).task
    client = tracking.connect(tracking_uri)
    try:
        primary = task.primary_metric(config.primary_metric)
    except TaskError as error:
        tracking.mark_failed(client, parent_run_id, "gate", str(error))
        raise
    candidates = [Candidate(**json.loads(result)["candidate"]) for result in results_json]
    winner = pick_winner(candidates, task, primary)
    try:
        champion_metrics, champion_version = champion_scores(tracking_uri, model_name, test_path, task)
    except ChampionScoringError as error:
        decision = Decision(False, winner, "", str(error))
    else:
        if champion_metrics is not None:
            print(
                f"gate: champion v{champion_version} scores {primary} {champion_metrics[primary]:.4f} on this test set"
            )
        decision = decide(winner, task, config, champion_metrics, champion_version)
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
