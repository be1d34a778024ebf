"""Gate: pick the best candidate and decide whether it may be proposed, with MLflow's validation API.

The candidate must pass absolute thresholds, and beat the current champion (scored on the same test rows)
by a margin. Without a champion the winner becomes champion directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import MetricThreshold
from mlflow.models.evaluation import EvaluationResult

from components.common.tracking import CHALLENGER, CHAMPION
from components.evaluate.core import PRIMARY_METRIC


@dataclass(frozen=True)
class Candidate:
    """One trained candidate and its test metrics."""

    name: str
    metrics: dict[str, float]
    model_uri: str
    run_id: str


@dataclass(frozen=True)
class GateConfig:
    """Pipeline parameters of the gate."""

    min_roc_auc: float
    min_accuracy: float
    margin: float

    def __post_init__(self) -> None:
        """Reject settings that would make the gate meaningless."""
        if self.margin <= 0:
            raise ValueError(f"margin must be > 0 (the candidate must beat the champion), got {self.margin}")
        for name in ("min_roc_auc", "min_accuracy"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class Decision:
    """What the gate decided, and why, in words a person can read."""

    passed: bool
    winner: Candidate
    alias: str
    reason: str


def pick_winner(candidates: list[Candidate]) -> Candidate:
    """Return the candidate with the best ROC AUC; ties go to the lower log loss."""
    if not candidates:
        raise ValueError("no candidates to choose from")
    return max(candidates, key=lambda c: (c.metrics[PRIMARY_METRIC], -c.metrics["log_loss"]))


def thresholds(config: GateConfig, against_champion: bool) -> dict[str, MetricThreshold]:
    """Return MLflow metric thresholds; the margin applies only when there is a champion to beat."""
    margin = config.margin if against_champion else None
    return {
        PRIMARY_METRIC: MetricThreshold(
            threshold=config.min_roc_auc, min_absolute_change=margin, greater_is_better=True
        ),
        "accuracy": MetricThreshold(threshold=config.min_accuracy, greater_is_better=True),
    }


def decide(
    winner: Candidate,
    config: GateConfig,
    champion_metrics: dict[str, float] | None,
    champion_version: str | None,
) -> Decision:
    """Validate the winner against thresholds and the champion; never raises on a failed gate."""
    baseline = EvaluationResult(metrics=champion_metrics, artifacts={}) if champion_metrics else None
    try:
        mlflow.validate_evaluation_results(
            thresholds(config, baseline is not None),
            EvaluationResult(metrics=winner.metrics, artifacts={}),
            baseline,
        )
    except MlflowException as failure:
        return Decision(False, winner, "", " ".join(failure.message.split()))
    auc = winner.metrics[PRIMARY_METRIC]
    if champion_metrics is None:
        reason = f"no champion yet: {winner.name} (roc_auc {auc:.4f}) becomes {CHAMPION} directly"
        return Decision(True, winner, CHAMPION, reason)
    reason = (
        f"{winner.name} roc_auc {auc:.4f} beats champion v{champion_version} "
        f"({champion_metrics[PRIMARY_METRIC]:.4f}) by at least {config.margin}; proposed as {CHALLENGER}"
    )
    return Decision(True, winner, CHALLENGER, reason)


def champion_scores(
    tracking_uri: str, model_name: str, test_path: str, target: str
) -> tuple[dict[str, float] | None, str | None]:
    """Score the current champion on this run's test rows; (None, None) when there is no champion."""
    import pandas as pd

    from components.common import modeling, tracking
    from components.evaluate.core import evaluate_model

    version = tracking.champion_version(tracking.connect(tracking_uri), model_name)
    if version is None:
        return None, None
    features, labels = modeling.split_features(pd.read_parquet(test_path), target)
    model = modeling.load_model(f"models:/{model_name}/{version}")
    scores, _ = evaluate_model(model, features, labels)
    return scores, version


def run(
    results_json: list[str],
    test_path: str,
    target: str,
    tracking_uri: str,
    model_name: str,
    parent_run_id: str,
    config: GateConfig,
) -> Decision:
    """Step entry: choose the winner, score the champion, decide, and record the decision on the parent run."""
    import json

    from components.common import tracking

    candidates = [Candidate(**json.loads(result)["candidate"]) for result in results_json]
    winner = pick_winner(candidates)
    champion_metrics, champion_version = champion_scores(tracking_uri, model_name, test_path, target)
    if champion_metrics is not None:
        print(
            f"gate: champion v{champion_version} scores roc_auc {champion_metrics[PRIMARY_METRIC]:.4f} on this test set"
        )
    decision = decide(winner, config, champion_metrics, champion_version)
    client = tracking.connect(tracking_uri)
    client.set_tag(parent_run_id, tracking.TAG_WINNER, winner.name)
    client.set_tag(parent_run_id, tracking.TAG_DECISION, "passed" if decision.passed else "rejected")
    client.set_tag(parent_run_id, tracking.TAG_REASON, decision.reason)
    for key, value in winner.metrics.items():
        client.log_metric(parent_run_id, f"winner_{key}", value)
    print(f"gate: {'PASSED' if decision.passed else 'REJECTED'}: {decision.reason}")
    if not decision.passed:
        print("gate: no registry change")
        client.set_terminated(parent_run_id, status="FINISHED")
    return decision
