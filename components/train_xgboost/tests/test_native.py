"""XGBoost on its native categorical support, and its time budget."""

import numpy as np

from components.train_xgboost.core import build_model, fitted_booster, for_cpu_inference


def test_categories_are_split_natively_not_one_hot(tables):
    table = tables["mixed"]
    model = build_model(table.profile, seed=0, device="cpu", n_estimators=30).fit(table.x_train, table.y_train)
    fitted = fitted_booster(model)
    assert fitted is not None
    booster = fitted.get_booster()
    features = table.profile.features
    categorical = [name for name, stats in features.items() if not stats.is_numeric]
    # One input per raw feature: categorical ones are typed "c", no column per category.
    assert booster.num_features() == len(features)
    assert list(booster.feature_types or ()).count("c") == len(categorical) == 4
    trees = booster.trees_to_dataframe()
    assert trees["Category"].notna().any(), "no tree split on a category set"
    assert (model.predict(table.x_test) == table.y_test).mean() > 0.85


def test_the_time_budget_keeps_the_rounds_grown_and_is_not_saved(tables, capsys):
    table = tables["mixed"]
    model = build_model(table.profile, seed=0, device="cpu", n_estimators=200, time_budget_s=0.0)
    model.fit(table.x_train, table.y_train)
    booster = fitted_booster(model)
    assert booster is not None
    assert booster.get_booster().num_boosted_rounds() == 1
    assert "time budget of 0s reached after 1 rounds" in capsys.readouterr().out
    assert np.isfinite(model.predict_proba(table.x_test)).all()
    for_cpu_inference(model)
    learner = model.steps[-1][1]
    assert booster.get_params()["callbacks"] is None
    assert learner.estimator.get_params()["callbacks"] is None
