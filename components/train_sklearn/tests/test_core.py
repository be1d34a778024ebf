import pytest
from sklearn.metrics import r2_score, roc_auc_score

from components.common.modeling import predict_output
from components.train_sklearn.core import build_model


@pytest.mark.parametrize("name", ["binary", "multiclass", "mixed"])
def test_classifies_every_kind_of_table(tables, name):
    table = tables[name]
    model = build_model(table.profile, seed=0).fit(table.x_train, table.y_train)
    probability = predict_output(model, table.profile.task, table.x_test)
    assert probability.shape == (len(table.x_test), len(table.profile.task.classes))
    assert [str(c) for c in model.classes_] == table.profile.task.class_names
    auc = roc_auc_score(table.y_test.astype(str), probability[:, 1]) if name != "multiclass" else None
    assert auc is None or auc > 0.9
    assert (model.predict(table.x_test) == table.y_test).mean() > 0.85


def test_regresses(tables):
    table = tables["regression"]
    model = build_model(table.profile, seed=0).fit(table.x_train, table.y_train)
    assert r2_score(table.y_test, predict_output(model, table.profile.task, table.x_test)) > 0.3
