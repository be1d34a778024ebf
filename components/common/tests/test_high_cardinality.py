"""A 1,000-category column is validated, encoded without one column per category, saved and loaded by plinth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.common import modeling
from components.common.features import prepare_features, split_target
from components.ingest.synthetic import churn_table
from components.split.core import split
from components.train_hgb.core import as_saved as hgb_saved
from components.train_hgb.core import build_model as build_hgb
from components.train_sklearn.core import as_saved
from components.train_sklearn.core import build_model as build_sklearn
from components.train_torch.core import build_model as build_torch
from components.train_xgboost.core import build_model as build_xgboost
from components.train_xgboost.core import fitted_booster, for_cpu_inference
from components.validate.core import validate

MERCHANTS = 1000
CANDIDATES = {
    "sklearn": lambda profile: build_sklearn(profile, seed=0),
    "xgboost": lambda profile: build_xgboost(profile, seed=0, device="cpu", n_estimators=20),
    "torch": lambda profile: build_torch(profile, seed=0, device="cpu", epochs=5),
    "hgb": lambda profile: build_hgb(profile, seed=0, max_iter=20),
}
SAVED = {"sklearn": as_saved, "xgboost": for_cpu_inference, "torch": lambda model: model, "hgb": hgb_saved}


def merchant_table(rows: int = 4000) -> pd.DataFrame:
    """The churn table with a merchant id of 1,000 values that moves the label (every tenth merchant churns)."""
    frame = churn_table(rows=rows, seed=3)
    merchant = np.random.default_rng(5).permutation(np.arange(rows) % MERCHANTS)
    frame["merchant"] = [f"m{code:04d}" for code in merchant]
    frame.loc[merchant % 10 == 0, "churned"] = "yes"
    return frame


def validated_split(target: str) -> tuple:
    """Validate the merchant table for `target`; return the outcome and the typed train/test rows."""
    frame = merchant_table()
    if target == "income":
        frame = frame.dropna(subset=["income"])
    outcome = validate(frame, target, None)
    assert outcome.profile is not None, outcome.report.summary()
    train, test = split(frame, target, 0.25, seed=0, stratify=outcome.profile.task.is_classification)
    return outcome, *split_target(train, outcome.profile), *split_target(test, outcome.profile)


@pytest.fixture(scope="module", params=["churned", "income"], ids=["binary", "regression"])
def merchants(request):
    return validated_split(request.param)


def test_the_report_says_the_column_is_high_cardinality_and_how_it_is_encoded(merchants):
    outcome = merchants[0]
    assert outcome.profile.features["merchant"].high_cardinality
    row = next(c for c in outcome.report.checks if (c.column, c.rule) == ("merchant", "categories"))
    assert row.passed
    assert f"{MERCHANTS} distinct values" in row.detail
    encodings = "target encoding (linear, MLP, HistGradientBoosting), native categories (XGBoost)"
    assert f"high-cardinality: {encodings}" in row.detail


@pytest.mark.parametrize("candidate", sorted(CANDIDATES))
def test_each_candidate_trains_narrow_and_round_trips_through_plinths_loader(
    merchants, candidate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(modeling.ENV_ALLOW_PICKLE, "false")
    outcome, x_train, y_train, x_test, _ = merchants
    profile = outcome.profile
    model = CANDIDATES[candidate](profile).fit(x_train, y_train)
    if candidate == "xgboost":
        booster = fitted_booster(model)
        assert booster is not None
        assert booster.get_booster().num_features() == len(profile.features)
    else:  # 1,000 merchants make no more than a handful of columns (one-hot would make 1,000)
        assert model[:-1].transform(x_test.head(5)).shape[1] < 40
    model = SAVED[candidate](model)
    modeling.save_model(model, str(tmp_path / "model"), x_train, profile, candidate)
    loaded = modeling.load_model(str(tmp_path / "model"))
    expected = modeling.predict_output(model, profile.task, x_test)
    np.testing.assert_array_equal(modeling.predict_output(loaded, profile.task, x_test), expected)
    unseen = prepare_features(x_test.head(3).assign(merchant=["never", None, "m9999"]), profile)
    assert np.isfinite(modeling.predict_output(loaded, profile.task, unseen)).all()


def test_the_merchant_signal_is_learnt_by_the_linear_model():
    from sklearn.metrics import roc_auc_score

    outcome, x_train, y_train, x_test, y_test = validated_split("churned")

    with_merchant = build_sklearn(outcome.profile, seed=0).fit(x_train, y_train)
    without = build_sklearn(outcome.profile, seed=0).fit(x_train.assign(merchant="m"), y_train)
    score = {
        "with": roc_auc_score(y_test == "yes", with_merchant.predict_proba(x_test)[:, 1]),
        "without": roc_auc_score(y_test == "yes", without.predict_proba(x_test.assign(merchant="m"))[:, 1]),
    }
    assert score["with"] > score["without"] + 0.01, score
