"""Refit on training + validation rows: the rounds the first fit found, no early stopping, the decision kept."""

from __future__ import annotations

import numpy as np
import pytest

from components.common.decision import SIGMOID, calibrated, carried, expected_calibration_error
from components.common.task import encode_labels
from components.search.families import builder
from components.search.refit import fixed_rounds, learner_of, refit


def halves(table):
    """The table's training rows as (train, validation) halves, as the split step carves them."""
    cut = len(table.x_train) // 2
    train = (table.x_train.iloc[:cut], table.y_train.iloc[:cut])
    validation = (table.x_train.iloc[cut:], table.y_train.iloc[cut:])
    return train, validation


@pytest.mark.parametrize("family", ["hgb", "torch", "xgboost"])
def test_a_refit_takes_the_rounds_the_first_fit_ended_with_on_every_row(tables, family) -> None:
    table = tables["multiclass"]
    train, validation = halves(table)
    build = builder(family, table.profile, seed=0, device="cpu", time_budget_s=60)
    first = build(**({"n_estimators": 30} if family == "xgboost" else {})).fit(*train)
    rounds = fixed_rounds(first)
    again, rows = refit(build(), rounds, train, validation)
    assert len(rows) == len(table.x_train)
    learner, before = learner_of(again), learner_of(first)
    if family == "hgb":  # stopped early on its own slice first; the refit runs exactly that many rounds
        assert rounds == {"max_iter": before.n_iter_, "early_stopping": False}
        assert before.n_iter_ < 500
        assert learner.n_iter_ == before.n_iter_
    elif family == "torch":  # the kept pass, every row fitted, no pass held out to stop on
        assert rounds["epochs"] == before.best_epoch_ == learner.passes_
        assert learner.validation_fraction == 0.0
    else:  # XGBoost's rounds come with the built model (here 30 instead of the default 200)
        assert rounds == {"estimator__n_estimators": 30}
        assert learner.estimator_.get_booster().num_boosted_rounds() == 30
    assert set(again.predict(table.x_test)) <= set(table.profile.task.classes)


def test_no_round_count_for_the_linear_model(tables) -> None:
    table = tables["binary"]
    build = builder("sklearn", table.profile, seed=0, device="cpu", time_budget_s=60)
    assert fixed_rounds(build().fit(table.x_train, table.y_train)) == {}


def test_the_calibrator_chosen_on_validation_maps_the_refit_models_scores(tables) -> None:
    table = tables["binary"]
    train, validation = halves(table)
    build = builder("sklearn", table.profile, seed=0, device="cpu", time_budget_s=60)
    first = build(c=100.0).fit(*train)
    decided = calibrated(first, validation[0], validation[1], SIGMOID)
    again, _ = refit(build(c=100.0), {}, train, validation)
    moved = carried(decided, again)
    old, new = learner_of(decided), learner_of(moved)
    assert [part.calibrators for part in new.calibrated_classifiers_] == [
        part.calibrators for part in old.calibrated_classifiers_
    ]  # the same fitted sigmoid, chosen on the validation rows
    assert new.estimator.estimator is learner_of(again)  # ... now in front of the refit learner
    assert learner_of(decided).estimator.estimator is learner_of(first)  # the decided model is left as it was
    scores = moved.predict_proba(table.x_test)
    assert not np.allclose(scores, decided.predict_proba(table.x_test))
    assert np.allclose(scores.sum(axis=1), 1.0)
    truth = encode_labels(table.profile.task, table.y_test)
    assert expected_calibration_error(scores, truth) < 0.1
    assert carried(first, again) is again  # nothing to carry without a calibrator
