import pickle

import numpy as np
import pytest
from sklearn.metrics import r2_score, roc_auc_score

from components.common.modeling import predict_output
from components.train_torch.core import WEIGHTS, TorchMLPClassifier, build_model


def test_binary_network_separates_the_classes(tables):
    table = tables["binary"]
    model = build_model(table.profile, seed=0, device="cpu", epochs=150).fit(table.x_train, table.y_train)
    probability = model.predict_proba(table.x_test)
    assert probability.shape == (len(table.x_test), 2)
    np.testing.assert_allclose(probability.sum(axis=1), 1.0, rtol=1e-6)
    assert roc_auc_score(table.y_test, probability[:, 1]) > 0.95


@pytest.mark.parametrize("name", ["multiclass", "mixed"])
def test_softmax_and_string_labels(tables, name):
    table = tables[name]
    model = build_model(table.profile, seed=0, device="cpu").fit(table.x_train, table.y_train)
    probability = predict_output(model, table.profile.task, table.x_test)
    assert probability.shape == (len(table.x_test), len(table.profile.task.classes))
    np.testing.assert_allclose(probability.sum(axis=1), 1.0, rtol=1e-6)
    assert (model.predict(table.x_test) == table.y_test).mean() > 0.85


def test_regression_keeps_the_best_epoch_and_predicts_in_target_units(tables):
    table = tables["regression"]
    model = build_model(table.profile, seed=0, device="cpu").fit(table.x_train, table.y_train)
    network = model.steps[-1][1]
    assert network.best_epoch_ < network.epochs
    predicted = predict_output(model, table.profile.task, table.x_test)
    assert abs(predicted.mean() - table.y_test.mean()) < table.y_test.std()
    assert r2_score(table.y_test, predicted) > 0.2


def test_same_seed_same_model_and_pickle_round_trip(tables):
    table = tables["binary"]
    first = build_model(table.profile, seed=3, device="cpu", epochs=20).fit(table.x_train, table.y_train)
    second = build_model(table.profile, seed=3, device="cpu", epochs=20).fit(table.x_train, table.y_train)
    np.testing.assert_array_equal(first.predict_proba(table.x_test), second.predict_proba(table.x_test))
    restored = pickle.loads(pickle.dumps(first))
    np.testing.assert_array_equal(restored.predict(table.x_test), first.predict(table.x_test))


def test_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2 classes"):
        TorchMLPClassifier(epochs=1).fit(np.zeros((10, 2)), np.ones(10))


def test_the_saved_state_holds_the_weights_as_numpy_arrays_and_no_torch_object(tables):
    table = tables["multiclass"]
    model = build_model(table.profile, seed=0, device="cpu", epochs=5).fit(table.x_train, table.y_train)
    network = model.steps[-1][1]
    state = network.__getstate__()
    assert "network_" not in state
    assert state[WEIGHTS]
    assert all(isinstance(value, np.ndarray) for value in state[WEIGHTS].values())
    restored = TorchMLPClassifier.__new__(TorchMLPClassifier)
    restored.__setstate__(state)
    np.testing.assert_array_equal(
        restored.predict_proba(model[:-1].transform(table.x_test)), model.predict_proba(table.x_test)
    )
