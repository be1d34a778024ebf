import pytest

from components.common.task import BINARY, REGRESSION, Task, TaskError
from components.gate.core import Candidate, GateConfig, decide, pick_winner

CONFIG = GateConfig(min_roc_auc=0.9, min_accuracy=0.85, margin=0.002, min_r2=0.0)
BINARY_TASK = Task(BINARY, (0, 1))
REGRESSION_TASK = Task(REGRESSION)


def candidate(name: str, auc: float, loss: float = 0.1, accuracy: float = 0.95) -> Candidate:
    metrics = {"roc_auc": auc, "accuracy": accuracy, "f1": 0.9, "f1_macro": 0.9, "log_loss": loss}
    return Candidate(name, metrics, f"models:/{name}", f"run-{name}", BINARY, f"sha256:{name}")


def regressor(name: str, rmse: float, r2: float) -> Candidate:
    return Candidate(
        name,
        {"rmse": rmse, "mae": rmse * 0.8, "r2": r2},
        f"models:/{name}",
        f"run-{name}",
        REGRESSION,
        f"sha256:{name}",
    )


def test_winner_has_best_auc_and_ties_go_to_lower_log_loss():
    assert pick_winner([candidate("a", 0.97), candidate("b", 0.99)], BINARY_TASK, "roc_auc").name == "b"
    tied = [candidate("a", 0.99, loss=0.2), candidate("b", 0.99, loss=0.1)]
    assert pick_winner(tied, BINARY_TASK, "roc_auc").name == "b"


def test_lower_is_better_metrics_pick_the_lowest():
    candidates = [regressor("a", 50.0, 0.40), regressor("b", 48.0, 0.45)]
    assert pick_winner(candidates, REGRESSION_TASK, "rmse").name == "b"
    assert pick_winner(candidates, REGRESSION_TASK, "r2").name == "b"


def test_first_winner_becomes_champion():
    decision = decide(candidate("a", 0.99), BINARY_TASK, CONFIG, None, None)
    assert decision.passed
    assert decision.alias == "champion"
    assert "no champion yet" in decision.reason


def test_must_beat_champion_by_margin():
    champion = {"roc_auc": 0.989, "accuracy": 0.95, "f1": 0.9, "f1_macro": 0.9, "log_loss": 0.1}
    rejected = decide(candidate("a", 0.990), BINARY_TASK, CONFIG, champion, "3")
    assert not rejected.passed
    assert rejected.alias == ""
    assert "roc_auc minimum absolute change check failed" in rejected.reason
    accepted = decide(candidate("a", 0.992), BINARY_TASK, CONFIG, champion, "3")
    assert accepted.passed
    assert accepted.alias == "challenger"
    assert "champion v3" in accepted.reason


def test_regression_margin_goes_the_metrics_way():
    champion = {"rmse": 50.0, "mae": 40.0, "r2": 0.40}
    rmse_config = GateConfig(min_roc_auc=0.9, min_accuracy=0.85, margin=0.5, primary_metric="rmse")
    assert decide(regressor("a", 49.0, 0.42), REGRESSION_TASK, rmse_config, champion, "1").passed
    assert not decide(regressor("a", 49.8, 0.42), REGRESSION_TASK, rmse_config, champion, "1").passed
    assert not decide(regressor("a", 51.0, 0.42), REGRESSION_TASK, rmse_config, champion, "1").passed
    assert decide(regressor("a", 49.0, 0.42), REGRESSION_TASK, CONFIG, champion, "1").passed


def test_absolute_floors_apply_per_task_without_champion():
    decision = decide(candidate("a", 0.95, accuracy=0.80), BINARY_TASK, CONFIG, None, None)
    assert not decision.passed
    assert "accuracy" in decision.reason
    below_mean = decide(regressor("a", 80.0, -0.1), REGRESSION_TASK, CONFIG, None, None)
    assert not below_mean.passed
    assert "r2" in below_mean.reason


def test_a_primary_metric_of_another_task_is_refused():
    config = GateConfig(min_roc_auc=0.9, min_accuracy=0.85, margin=0.002, primary_metric="roc_auc")
    with pytest.raises(TaskError, match="does not apply to a regression task"):
        decide(regressor("a", 49.0, 0.42), REGRESSION_TASK, config, None, None)


@pytest.mark.parametrize("kwargs", [{"margin": 0.0}, {"min_roc_auc": 1.5}, {"min_r2": 2.0}])
def test_meaningless_config_is_rejected(kwargs):
    with pytest.raises(ValueError, match="must be"):
        GateConfig(**{"min_roc_auc": 0.9, "min_accuracy": 0.85, "margin": 0.002, **kwargs})


def test_pick_winner_needs_candidates():
    with pytest.raises(ValueError, match="no candidates"):
        pick_winner([], BINARY_TASK, "roc_auc")
