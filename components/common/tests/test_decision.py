"""Calibration and the decision threshold: chosen on validation rows, stored with the model, loaded without pickles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow.models import Model
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from components.common import modeling
from components.common.decision import (
    ISOTONIC,
    Decision,
    choose_threshold,
    decision_of,
    expected_calibration_error,
    finalize,
    parse_objective,
    threshold_of,
)
from components.common.features import split_target
from components.common.profile import build_profile
from components.common.task import BINARY, MULTICLASS, encode_labels, infer_task, predicted_index
from components.common.tests.imbalanced import TARGET, finalised_candidate, imbalanced_frame
from components.train_xgboost.core import build_model as build_xgboost
from components.train_xgboost.core import for_cpu_inference


def test_ece_of_a_hand_checkable_case() -> None:
    # Confidences 0.95, 0.85, 0.75, 0.65 fall in four different bins of 15; the second row is wrong.
    probabilities = np.array([[0.95, 0.05], [0.85, 0.15], [0.25, 0.75], [0.35, 0.65]])
    labels = np.array([0, 1, 1, 1])
    assert expected_calibration_error(probabilities, labels) == pytest.approx((0.05 + 0.85 + 0.25 + 0.35) / 4)
    # One bin: |accuracy 3/4 - mean confidence 0.8|.
    assert expected_calibration_error(probabilities, labels, bins=1) == pytest.approx(0.05)
    assert expected_calibration_error(np.array([[0.9, 0.1], [0.7, 0.3]]), np.array([0, 0])) == pytest.approx(0.2)


def test_the_threshold_of_a_hand_checkable_case() -> None:
    scores = np.array([0.1, 0.2, 0.35, 0.4, 0.8, 0.9])
    classes = np.array([0, 0, 1, 0, 1, 1])
    # F1 is best (6/7) labelling from 0.35 on: every cut in (0.2, 0.35] does that; the middle is taken.
    assert choose_threshold(scores, classes, "f1") == pytest.approx(0.275)
    # Errors alike: one error from 0.8 on (the highest best cut, in (0.4, 0.8]) or from 0.35 on.
    assert choose_threshold(scores, classes, "cost:1,1") == pytest.approx(0.6)
    assert choose_threshold(scores, classes, "cost:1,10") == pytest.approx(0.275)  # a miss costs ten
    assert choose_threshold(scores, classes, "cost:10,1") == pytest.approx(0.6)  # a false alarm costs ten
    assert choose_threshold(scores, np.zeros(6, dtype=int), "f1") is None


def test_threshold_for_f1_labels_the_rare_class_that_half_never_does() -> None:
    final = finalised_candidate()
    assert final.decision.calibration == "none"  # a logistic regression is calibrated already (ECE under the limit)
    assert final.decision.ece_before == pytest.approx(final.decision.ece_after)
    threshold = final.decision.threshold
    assert threshold is not None
    assert 0.1 < threshold < 0.45
    positive = final.model.predict_proba(final.x_test)
    at_half = predicted_index(positive, BINARY)
    tuned = predicted_index(positive, BINARY, threshold)
    truth = encode_labels(final.profile.task, final.y_test)
    assert at_half.mean() < 0.5 * truth.mean() < tuned.mean()  # 0.5 all but never says "bought"
    assert f1_score(truth, tuned) > f1_score(truth, at_half) + 0.1


def test_a_costly_miss_lowers_the_threshold() -> None:
    even, costly = finalised_candidate("cost:1,1"), finalised_candidate("cost:1,10")
    assert even.decision.objective == "cost:1,1"
    assert even.decision.threshold is not None
    assert costly.decision.threshold is not None
    assert costly.decision.threshold < 0.25 < even.decision.threshold


@pytest.mark.parametrize("objective", ["accuracy", "cost:1", "cost:a,b", "cost:-1,2", "cost:0,0"])
def test_a_malformed_objective_names_the_flag(objective: str) -> None:
    with pytest.raises(ValueError, match="--decision-objective") as refused:
        parse_objective(objective)
    assert repr(objective) in str(refused.value)
    assert parse_objective("cost:1,5") == (1.0, 5.0)
    assert parse_objective("f1") is None


def test_an_overconfident_model_is_calibrated_and_loads_with_pickles_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = imbalanced_frame(6000)
    profile = build_profile(frame, TARGET, infer_task(frame[TARGET]))
    train, rest = train_test_split(frame, test_size=0.5, random_state=0, stratify=frame[TARGET])
    validation, test = train_test_split(rest, test_size=0.5, random_state=0, stratify=rest[TARGET])
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        split_target(rows, profile) for rows in (train, validation, test)
    )
    deep = build_xgboost(profile, seed=0, device="cpu", n_estimators=300, max_depth=8).fit(x_train, y_train)
    model = for_cpu_inference(deep)
    calibrated, decision = finalize(model, x_val, y_val, profile)

    assert decision.calibration == ISOTONIC  # 1,500 validation rows: enough for isotonic regression
    assert decision.ece_before is not None
    assert decision.ece_after is not None
    assert decision.ece_before > 0.03 > decision.ece_after
    truth = encode_labels(profile.task, y_test)
    held_out_before = expected_calibration_error(model.predict_proba(x_test), truth)
    held_out_after = expected_calibration_error(calibrated.predict_proba(x_test), truth)
    assert held_out_after < 0.75 * held_out_before  # on rows neither fit saw

    monkeypatch.setenv(modeling.ENV_ALLOW_PICKLE, "false")
    path = tmp_path / "model"
    modeling.save_model(calibrated, str(path), x_train, profile, "xgboost", decision=decision.metadata())
    loaded = modeling.load_model(str(path))
    np.testing.assert_array_equal(loaded.predict_proba(x_test), calibrated.predict_proba(x_test))
    metadata = Model.load(str(path / "MLmodel")).metadata
    assert decision_of(metadata) == decision
    assert threshold_of(metadata) == decision.threshold


def test_decision_metadata_round_trips_through_json() -> None:
    decision = Decision(0.3125, "cost:1,5", "sigmoid", 0.081, 0.012, refit=True, fit_rows=455)
    block = json.loads(json.dumps(decision.metadata()))
    assert Decision.from_metadata(block) == decision
    old = {key: value for key, value in block.items() if key not in ("refit", "fit_rows")}  # saved before refit
    assert (Decision.from_metadata(old).refit, Decision.from_metadata(old).fit_rows) == (False, None)
    assert decision_of({"plinth": {"decision": block}}) == decision
    assert decision_of({"plinth": {"task": {}}}) is None
    assert threshold_of(None) is None
    with pytest.raises(ValueError, match="--decision-objective"):
        Decision.from_metadata({**block, "objective": "precision"})


def test_regression_and_multiclass_labels_keep_their_rule(tables) -> None:
    regression = tables["regression"]
    model = object()
    same, decision = finalize(model, regression.x_test, regression.y_test, regression.profile)
    assert same is model
    assert decision.threshold is None
    assert decision.ece_before is None
    output = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    assert predicted_index(output, MULTICLASS).tolist() == [1, 0]
    assert predicted_index(np.array([[0.5, 0.5], [0.6, 0.4]]), BINARY).tolist() == [1, 0]  # 0.5 without a threshold
    assert predicted_index(np.array([[0.5, 0.5], [0.6, 0.4]]), BINARY, 0.4).tolist() == [1, 1]


def test_make_train_refuses_a_malformed_objective_in_one_line_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pipelines.run_local import parse_args

    assert parse_args(["--decision-objective", "cost:1,5"]).decision_objective == "cost:1,5"
    assert parse_args([]).decision_objective == "f1"
    with pytest.raises(SystemExit) as refused:
        parse_args(["--decision-objective", "cost:1"])
    assert refused.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --decision-objective: decision_objective (--decision-objective) must be" in last
