"""The HistGradientBoosting candidate: native categories, early stopping, a time budget and a plain model file."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import r2_score

from components.common import modeling
from components.train_hgb import core


@pytest.fixture(scope="module")
def fitted(tables):
    """The candidate fitted on every test table, as the train step saves it."""
    return {
        name: core.as_saved(core.build_model(t.profile, seed=0).fit(t.x_train, t.y_train)) for name, t in tables.items()
    }


@pytest.mark.parametrize("name", ["binary", "multiclass", "mixed"])
def test_classifies_in_the_original_labels(tables, fitted, name):
    table, model = tables[name], fitted[name]
    assert [str(c) for c in model.classes_] == table.profile.task.class_names
    assert (model.predict(table.x_test) == table.y_test).mean() > 0.85


def test_regresses(tables, fitted):
    table = tables["regression"]
    assert r2_score(table.y_test, modeling.predict_output(fitted["regression"], table.profile.task, table.x_test)) > 0.2


def test_categories_are_split_on_natively_and_boosting_stops_early(tables, fitted):
    table, learner = tables["mixed"], fitted["mixed"].steps[-1][1]
    categorical = [name for name, stats in table.profile.features.items() if not stats.is_numeric]
    assert categorical  # the churn table has text and boolean categories
    assert learner.is_categorical_.tolist() == [False] * (len(table.profile.features) - len(categorical)) + [
        True
    ] * len(categorical)
    assert learner.do_early_stopping_
    assert learner.n_iter_ < core.MAX_ITER
    assert len(learner.validation_score_) == learner.n_iter_ + 1


def test_the_time_budget_stops_after_the_chunk_that_crosses_it(tables, monkeypatch, capsys):
    table = tables["multiclass"]
    monkeypatch.setattr(core, "CHUNK_ITER", 3)
    model = core.build_model(table.profile, seed=0, time_budget_s=0.0, learning_rate=0.01).fit(
        table.x_train, table.y_train
    )
    assert model.stopped_by_budget_
    assert model.n_iter_ == 3
    assert "time budget of 0s reached after 3 rounds" in capsys.readouterr().out
    assert np.isfinite(model.predict_proba(table.x_test)).all()


def test_searched_parameters_reach_the_learner(tables):
    table = tables["binary"]
    params: dict[str, Any] = {
        "learning_rate": 0.05,
        "max_leaf_nodes": 7,
        "min_samples_leaf": 5,
        "l2_regularization": 0.3,
    }
    model = core.build_model(table.profile, seed=1, class_weight="balanced", **params)
    saved = core.as_saved(model.fit(table.x_train, table.y_train))
    assert type(saved) is HistGradientBoostingClassifier
    assert {**params, "class_weight": "balanced", "random_state": 1}.items() <= saved.get_params().items()


@pytest.mark.parametrize("name", ["mixed", "regression"])
def test_saved_as_plain_scikit_learn_and_loads_with_pickles_disallowed(
    tables, fitted, name, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv(modeling.ENV_ALLOW_PICKLE, "false")
    table, model = tables[name], fitted[name]
    learner = model.steps[-1][1] if hasattr(model, "steps") else model
    assert type(learner) in (HistGradientBoostingClassifier, HistGradientBoostingRegressor)
    untrusted = set(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    assert untrusted <= set(modeling.TRUSTED_TYPES)
    assert "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor" in untrusted  # needed, so listed
    modeling.save_model(model, str(tmp_path / "model"), table.x_train, table.profile, "hgb")
    loaded = modeling.load_model(str(tmp_path / "model"))
    np.testing.assert_array_equal(
        modeling.predict_output(loaded, table.profile.task, table.x_test),
        modeling.predict_output(model, table.profile.task, table.x_test),
    )


def test_the_search_draws_its_space_and_tries_the_fixed_settings_first(tables):
    from components.search.core import run_study
    from components.search.families import builder

    table = tables["binary"]
    build = builder("hgb", table.profile, 0, "cpu", 60.0)
    train, validation = (table.x_train, table.y_train), (table.x_test, table.y_test)
    result = run_study("hgb", build, table.profile, train, validation, "roc_auc", trials=3, seconds=120.0, seed=0)
    fixed = {"learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20, "l2_regularization": 0.0}
    assert [trial.params for trial in result.trials[:1]] == [fixed]
    assert len(result.trials) == 3
    for trial in result.trials[1:]:
        assert set(trial.params) == set(fixed), "no class weights: weighted binning costs seconds per fit"
        assert 0.02 <= trial.params["learning_rate"] <= 0.3
