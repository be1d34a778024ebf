from sklearn.metrics import roc_auc_score

from components.train_xgboost.core import build_model, for_cpu_inference


def test_fits_and_separates_the_classes(breast_cancer_split):
    x_train, y_train, x_test, y_test = breast_cancer_split
    model = build_model(seed=0, device="cpu", n_estimators=50).fit(x_train, y_train)
    assert roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]) > 0.95


def test_saved_models_predict_on_cpu(breast_cancer_split):
    x_train, y_train, _, _ = breast_cancer_split
    model = build_model(seed=0, device="cpu", n_estimators=5).fit(x_train, y_train)
    model.set_params(device="cuda")
    assert for_cpu_inference(model).get_params()["device"] == "cpu"
