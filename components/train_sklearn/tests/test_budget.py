"""The linear candidate: lbfgs with a sane iteration cap, a time budget, and a plain model file."""

import numpy as np
from sklearn.linear_model import LogisticRegression

from components.train_sklearn import core


def test_converges_in_few_iterations_and_saves_as_plain_logistic_regression(tables):
    table = tables["mixed"]
    model = core.build_model(table.profile, seed=0).fit(table.x_train, table.y_train)
    fitted = model.steps[-1][1]
    assert not fitted.stopped_by_budget_
    assert 0 < int(fitted.n_iter_[0]) < core.MAX_ITER
    before = model.predict_proba(table.x_test)
    saved = core.as_saved(model)
    assert type(saved.steps[-1][1]) is LogisticRegression
    np.testing.assert_array_equal(saved.predict_proba(table.x_test), before)


def test_the_time_budget_stops_the_solver_with_the_coefficients_it_has(tables, monkeypatch, capsys):
    table = tables["mixed"]
    monkeypatch.setattr(core, "CHUNK_ITER", 2)
    model = core.build_model(table.profile, seed=0, time_budget_s=0.0).fit(table.x_train, table.y_train)
    fitted = model.steps[-1][1]
    assert fitted.stopped_by_budget_
    assert int(fitted.n_iter_[0]) == 2
    assert "time budget of 0s reached after 2 iterations" in capsys.readouterr().out
    assert np.isfinite(model.predict_proba(table.x_test)).all()
