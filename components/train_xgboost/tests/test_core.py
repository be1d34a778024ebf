import numpy as np
import pytest
from sklearn.metrics import r2_score
from xgboost import XGBClassifier

from components.common.modeling import predict_output
from components.train_xgboost.core import LabelEncodedClassifier, build_model, for_cpu_inference


@pytest.mark.parametrize("name", ["binary", "multiclass", "mixed"])
def test_classifies_in_the_original_labels(tables, name):
    table = tables[name]
    model = build_model(table.profile, seed=0, device="cpu", n_estimators=50).fit(table.x_train, table.y_train)
    assert [str(c) for c in model.classes_] == table.profile.task.class_names
    assert (model.predict(table.x_test) == table.y_test).mean() > 0.85


def test_regresses(tables):
    table = tables["regression"]
    model = build_model(table.profile, seed=0, device="cpu", n_estimators=50).fit(table.x_train, table.y_train)
    assert r2_score(table.y_test, predict_output(model, table.profile.task, table.x_test)) > 0.2


def test_string_labels_are_encoded_for_xgboost_and_decoded_back():
    features = np.random.default_rng(0).random((60, 3))
    labels = np.array(["cat", "dog", "emu"] * 20)
    model = LabelEncodedClassifier(XGBClassifier(n_estimators=3)).fit(features, labels)
    assert model.classes_.tolist() == ["cat", "dog", "emu"]
    assert set(model.predict(features)) <= {"cat", "dog", "emu"}


def test_a_model_trained_for_cuda_is_saved_to_predict_on_cpu(tables):
    table = tables["mixed"]
    model = build_model(table.profile, seed=0, device="cpu", n_estimators=5).fit(table.x_train, table.y_train)
    before = model.predict_proba(table.x_test)
    model.steps[-1][1].estimator_.set_params(device="cuda")
    pinned = for_cpu_inference(model)
    assert pinned.steps[-1][1].estimator_.get_params()["device"] == "cpu"
    np.testing.assert_allclose(pinned.predict_proba(table.x_test), before)
