from sklearn.metrics import roc_auc_score

from components.train_sklearn.core import build_model


def test_fits_and_separates_the_classes(breast_cancer_split):
    x_train, y_train, x_test, y_test = breast_cancer_split
    model = build_model(seed=0).fit(x_train, y_train)
    assert roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]) > 0.95
