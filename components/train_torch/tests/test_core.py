import pickle

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from components.train_torch.core import TorchMLPClassifier, build_model


def test_fits_and_separates_the_classes(breast_cancer_split):
    x_train, y_train, x_test, y_test = breast_cancer_split
    model = build_model(seed=0, device="cpu", epochs=150).fit(x_train, y_train)
    probability = model.predict_proba(x_test)
    assert probability.shape == (len(x_test), 2)
    np.testing.assert_allclose(probability.sum(axis=1), 1.0, rtol=1e-6)
    assert roc_auc_score(y_test, probability[:, 1]) > 0.95


def test_same_seed_same_model_and_pickle_round_trip(breast_cancer_split):
    x_train, y_train, x_test, _ = breast_cancer_split
    first = build_model(seed=3, device="cpu", epochs=20).fit(x_train, y_train)
    second = build_model(seed=3, device="cpu", epochs=20).fit(x_train, y_train)
    np.testing.assert_array_equal(first.predict_proba(x_test), second.predict_proba(x_test))
    restored = pickle.loads(pickle.dumps(first))
    np.testing.assert_array_equal(restored.predict(x_test), first.predict(x_test))


def test_rejects_more_than_two_classes(breast_cancer_split):
    x_train, y_train, _, _ = breast_cancer_split
    with pytest.raises(ValueError, match="binary"):
        TorchMLPClassifier(epochs=1).fit(x_train, y_train.to_numpy() % 3 + np.arange(len(y_train)) % 3)
