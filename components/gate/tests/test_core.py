import pytest

from components.gate.core import Candidate, GateConfig, decide, pick_winner

CONFIG = GateConfig(min_roc_auc=0.9, min_accuracy=0.85, margin=0.002)


def candidate(name: str, auc: float, loss: float = 0.1, accuracy: float = 0.95) -> Candidate:
    metrics = {"roc_auc": auc, "accuracy": accuracy, "f1": 0.9, "log_loss": loss}
    return Candidate(name, metrics, f"models:/{name}", f"run-{name}")


def test_winner_has_best_auc_and_ties_go_to_lower_log_loss():
    assert pick_winner([candidate("a", 0.97), candidate("b", 0.99)]).name == "b"
    assert pick_winner([candidate("a", 0.99, loss=0.2), candidate("b", 0.99, loss=0.1)]).name == "b"


def test_first_winner_becomes_champion():
    decision = decide(candidate("a", 0.99), CONFIG, None, None)
    assert decision.passed
    assert decision.alias == "champion"
    assert "no champion yet" in decision.reason


def test_must_beat_champion_by_margin():
    champion = {"roc_auc": 0.989, "accuracy": 0.95, "f1": 0.9, "log_loss": 0.1}
    rejected = decide(candidate("a", 0.990), CONFIG, champion, "3")
    assert not rejected.passed
    assert rejected.alias == ""
    assert "roc_auc minimum absolute change check failed" in rejected.reason
    accepted = decide(candidate("a", 0.992), CONFIG, champion, "3")
    assert accepted.passed
    assert accepted.alias == "challenger"
    assert "champion v3" in accepted.reason


def test_absolute_thresholds_apply_without_champion():
    decision = decide(candidate("a", 0.95, accuracy=0.80), CONFIG, None, None)
    assert not decision.passed
    assert "accuracy" in decision.reason


@pytest.mark.parametrize("kwargs", [{"margin": 0.0}, {"min_roc_auc": 1.5}])
def test_meaningless_config_is_rejected(kwargs):
    with pytest.raises(ValueError, match="must be"):
        GateConfig(**{"min_roc_auc": 0.9, "min_accuracy": 0.85, "margin": 0.002, **kwargs})


def test_pick_winner_needs_candidates():
    with pytest.raises(ValueError, match="no candidates"):
        pick_winner([])
