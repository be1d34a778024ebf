"""The first champion's gate compares against a baseline: the prior (or the mean), on the same test rows.

Floors are opt-in: a hard problem (ROC AUC about 0.73) gets a first champion with the defaults, a floor given
explicitly still refuses it, and a model no better than the prior is refused naming the prior's score and the
margin. The step itself logs baseline, candidates and champion side by side.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.common import tracking
from components.common.decision import Decision
from components.common.features import split_target
from components.common.profile import ReferenceProfile, build_profile
from components.common.task import infer_task
from components.evaluate.baseline import PRIOR, baseline_output, baseline_scores
from components.evaluate.core import evaluate_model, score
from components.gate.config import GateConfig, parse_floor
from components.gate.core import Candidate, decide, run
from components.gate.tests.test_champion import register_champion
from components.split.core import split
from components.train_sklearn.core import build_model

DEFAULTS = GateConfig(margin=0.002)


def hard_table(rows: int = 2000) -> pd.DataFrame:
    """Two weak signals and two noise columns: the best a model can do is a ROC AUC of about 0.73."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(rows, 4))
    logit = 0.7 * features[:, 0] + 0.5 * features[:, 1]
    label = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return pd.DataFrame(features, columns=["a", "b", "noise_1", "noise_2"]).assign(target=label)


def as_candidate(name: str, metrics: dict[str, float], kind: str) -> Candidate:
    return Candidate(name, metrics, f"models:/{name}", f"run-{name}", kind, f"sha256:{name}")


@pytest.fixture(scope="module")
def hard() -> tuple[ReferenceProfile, pd.DataFrame, pd.DataFrame, Candidate]:
    """The hard table, its profile, its split, and the scikit-learn candidate scored on its test rows."""
    frame = hard_table()
    profile = build_profile(frame, "target", infer_task(frame.target))
    train, test = split(frame, "target", 0.25, seed=0, stratify=True)
    x_train, y_train = split_target(train, profile)
    x_test, y_test = split_target(test, profile)
    model = build_model(profile, seed=0).fit(x_train, y_train)
    metrics, _ = evaluate_model(model, profile.task, x_test, y_test)
    return profile, train, test, as_candidate("sklearn", metrics, profile.task.kind)


def test_the_baseline_is_the_prior_or_the_mean(tables: dict) -> None:
    binary = tables["binary"]
    prior = baseline_output(binary.profile, 3)
    assert prior.shape == (3, 2)
    np.testing.assert_allclose(prior[0], [binary.profile.class_shares[c] for c in binary.profile.task.class_names])
    scores = baseline_scores(binary.profile, binary.y_test)
    assert scores["roc_auc"] == 0.5  # a constant answer ranks nothing
    assert scores["accuracy"] == pytest.approx(float((binary.y_test == 1).mean()))  # the majority class
    regression = tables["regression"]
    assert regression.profile.target_profile is not None
    assert set(baseline_output(regression.profile, 4)) == {regression.profile.target_profile.mean}
    assert abs(baseline_scores(regression.profile, regression.y_test)["r2"]) < 0.05


def test_a_hard_problem_gets_a_first_champion_with_the_defaults(hard) -> None:
    profile, _, test, winner = hard
    assert 0.68 < winner.metrics["roc_auc"] < 0.78
    baseline = baseline_scores(profile, test.target)
    decision = decide(winner, profile.task, DEFAULTS, None, None, baseline, PRIOR)
    assert decision.passed, decision.reason
    assert decision.alias == "champion"
    assert f"beats the naive baseline, the prior (class shares) ({baseline['roc_auc']:.4f})" in decision.reason


def test_a_floor_given_explicitly_still_refuses_naming_its_flag(hard) -> None:
    profile, _, test, winner = hard
    floored = GateConfig(margin=0.002, min_roc_auc=parse_floor("min_roc_auc", "0.9"))
    decision = decide(winner, profile.task, floored, None, None, baseline_scores(profile, test.target), PRIOR)
    assert not decision.passed
    assert "--min-roc-auc" in decision.reason
    assert "roc_auc threshold = 0.9" in decision.reason


def test_a_model_no_better_than_the_prior_is_refused_naming_its_score_and_the_margin(tables: dict) -> None:
    table = tables["binary"]
    guess = np.full(len(table.y_test), 0.7)  # a model that never looked at the features: one answer for every row
    metrics = score(table.profile.task, table.y_test, np.column_stack([1 - guess, guess]))
    baseline = baseline_scores(table.profile, table.y_test)
    decision = decide(
        as_candidate("torch", metrics, "binary"), table.profile.task, DEFAULTS, None, None, baseline, PRIOR
    )
    assert not decision.passed
    assert decision.alias == ""
    assert "does not beat the naive baseline, the prior (class shares) (roc_auc 0.5000)" in decision.reason
    assert "the margin 0.002 (--margin)" in decision.reason


def test_floors_are_none_unless_set_and_refuse_what_is_not_a_number() -> None:
    assert DEFAULTS.floors(infer_task(pd.Series([0, 1]))) == {}
    assert parse_floor("min_r2", "") is None
    assert parse_floor("min_r2", "-0.5") == -0.5
    with pytest.raises(ValueError, match="min_accuracy \\(--min-accuracy\\) must be a number or empty"):
        parse_floor("min_accuracy", "high")
    with pytest.raises(ValueError, match="--min-roc-auc"):
        GateConfig(margin=0.002, min_roc_auc=1.5)


def test_the_step_logs_baseline_candidates_and_champion_side_by_side(hard, tmp_path: Path) -> None:
    profile, train, test, winner = hard
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    x_train, y_train = split_target(train, profile)
    champion = build_model(profile, seed=0).fit(x_train.head(200), y_train.head(200))
    stored = Decision(0.7, "cost:5,1", "sigmoid", 0.061, 0.012)  # the champion's own threshold
    register_champion(tracking_uri, "hard", champion, x_train, profile, pickled=False, decision=stored.metadata())
    (tmp_path / "profile.json").write_text(json.dumps(profile.to_dict()))
    test.to_parquet(tmp_path / "test.parquet")
    client = tracking.connect(tracking_uri)
    parent = client.create_run(tracking.ensure_experiment(client, "gate", tracking_uri)).info.run_id
    weaker = as_candidate("xgboost", {**winner.metrics, "roc_auc": winner.metrics["roc_auc"] - 0.01}, "binary")
    tuned = replace(winner, decision=Decision(0.4375, "f1", "none", 0.021, 0.021, True, 480).metadata())
    results = [json.dumps({"candidate": asdict(c)}) for c in (tuned, weaker)]

    decision = run(
        results, str(tmp_path / "test.parquet"), str(tmp_path / "profile.json"), tracking_uri, "hard", parent, DEFAULTS
    )

    report = client.download_artifacts(parent, "gate/report.md", str(tmp_path))
    text = Path(report).read_text()
    rows = [line.split(" | ")[0].lstrip("| ") for line in text.splitlines() if line.startswith("| ")]
    assert rows[:5] == ["model", "baseline: prior (class shares)", "sklearn (winner)", "xgboost", "champion v1"]
    assert rows[5:] == ["model", "sklearn", "xgboost"]  # how each candidate's probabilities become labels
    ece = f"{winner.metrics['ece']:.4f}"
    refit = "480 rows, training + validation (refit)"
    assert f"| sklearn | none | 0.0210 | 0.0210 | {ece} | 0.4375 (f1) | {refit} |" in text
    assert "| xgboost | none (none stored) |  |  |" in text
    assert "| 0.5 (none stored) |" in text
    x_test, y_test = split_target(test, profile)
    own, _ = evaluate_model(champion, profile.task, x_test, y_test, threshold=0.7)
    at_half, _ = evaluate_model(champion, profile.task, x_test, y_test)
    assert own["accuracy"] != at_half["accuracy"]
    assert f"| champion v1 | {own['roc_auc']:.4f} | {own['log_loss']:.4f} | {own['accuracy']:.4f} |" in text
    assert f"{winner.metrics['roc_auc']:.4f}" in text
    assert decision.reason in text
    logged = client.get_run(parent).data.metrics
    assert logged["baseline_roc_auc"] == 0.5
    assert logged["winner_roc_auc"] == winner.metrics["roc_auc"]
