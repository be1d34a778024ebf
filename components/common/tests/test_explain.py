"""Per-prediction contributions: every candidate x task sums to the model's own output, and each method is right.

The sum is checked against what the model answers (`predict_output`), through the link the Explanation's units
name: sigmoid of log-odds, softmax of logits, probabilities and values as they are.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.common import shapley
from components.common.explain import LINEAR, LOG_ODDS, LOGIT, PROBABILITY, SAMPLING, TREE_SHAP, VALUE, contributions
from components.common.features import prepare_features, split_target
from components.common.modeling import predict_output
from components.common.profile import build_profile
from components.common.shapley import background, sampled_contributions
from components.common.task import infer_task
from components.split.core import split
from components.train_hgb.core import as_saved as hgb_saved
from components.train_hgb.core import build_model as build_hgb
from components.train_sklearn.core import as_saved
from components.train_sklearn.core import build_model as build_sklearn
from components.train_torch.core import build_model as build_torch
from components.train_xgboost.core import build_model as build_xgboost
from components.train_xgboost.core import for_cpu_inference

CANDIDATES = {
    "sklearn": (lambda profile: build_sklearn(profile, seed=0), as_saved, LINEAR),
    "xgboost": (lambda profile: build_xgboost(profile, 0, "cpu", n_estimators=30), for_cpu_inference, TREE_SHAP),
    "torch": (lambda profile: build_torch(profile, 0, "cpu", epochs=5), lambda model: model, SAMPLING),
    "hgb": (lambda profile: build_hgb(profile, 0, max_iter=20), hgb_saved, SAMPLING),
}
UNITS = {"binary": LOG_ODDS, "multiclass": LOGIT, "regression": VALUE, "mixed": LOG_ODDS}
ROWS = 20


def model_output(explanation: Any, task_kind: str, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (base + contributions through the units' link, the model's own answer in the same form)."""
    totals = explanation.totals
    if explanation.units == LOG_ODDS:
        return 1.0 / (1.0 + np.exp(-totals[:, 0])), output[:, 1]
    if explanation.units == LOGIT:
        shifted = np.exp(totals - totals.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True), output
    if explanation.units == PROBABILITY:
        return totals, output[:, 1:] if task_kind in ("binary", "mixed") else output
    return totals[:, 0], output


@pytest.fixture(scope="module")
def fitted(tables) -> dict[tuple[str, str], Any]:
    """Every candidate fitted on every task's table (mixed: categories and missing values), as saved."""
    models = {}
    for table_name, table in tables.items():
        for candidate, (build, saved, _) in CANDIDATES.items():
            models[table_name, candidate] = saved(build(table.profile).fit(table.x_train, table.y_train))
    return models


@pytest.mark.parametrize("table_name", ["binary", "multiclass", "regression", "mixed"])
@pytest.mark.parametrize("candidate", list(CANDIDATES))
def test_base_value_and_contributions_sum_to_the_model_output(tables, fitted, table_name, candidate):
    table = tables[table_name]
    model, rows = fitted[table_name, candidate], table.x_test.head(ROWS)
    explanation = contributions(model, rows, table.profile)
    classes = len(table.profile.task.classes)
    outputs = classes if table_name == "multiclass" else 1
    assert explanation.method == CANDIDATES[candidate][2]
    assert explanation.units == (
        UNITS[table_name] if CANDIDATES[candidate][2] != SAMPLING or table_name == "regression" else PROBABILITY
    )
    assert explanation.contributions.shape == (ROWS, rows.shape[1], outputs)
    assert explanation.feature_names == list(rows.columns)
    linked, answered = model_output(
        explanation, table.profile.task.kind, predict_output(model, table.profile.task, rows)
    )
    scale = max(1.0, float(np.abs(answered).max()))
    np.testing.assert_allclose(linked, answered, atol=1e-5 * scale)  # XGBoost sums in float32
    importance = explanation.importance()
    assert set(importance) == set(rows.columns)
    assert list(importance.values()) == sorted(importance.values(), reverse=True)


def test_linear_contributions_are_coefficient_times_distance_from_the_training_mean(tables, fitted):
    table = tables["binary"]  # numeric only: the scaler's training mean is exactly the reference
    explanation = contributions(fitted["binary", "sklearn"], table.x_train, table.profile)
    np.testing.assert_allclose(explanation.contributions.mean(axis=0), 0.0, atol=1e-9)
    scaler, learner = fitted["binary", "sklearn"].steps[0][1], fitted["binary", "sklearn"].steps[-1][1]
    expected = scaler.transform(table.x_train) * learner.coef_[0]
    np.testing.assert_allclose(explanation.contributions[:, :, 0], expected, rtol=1e-9, atol=1e-12)


def one_feature_changed(rows: pd.DataFrame, column: str, value: Any) -> pd.DataFrame:
    changed = rows.copy()
    changed[column] = pd.Series([value] * len(rows), index=rows.index, dtype=rows[column].dtype)
    return changed


@pytest.mark.parametrize("candidate", ["sklearn", "xgboost"])
def test_changing_one_raw_feature_moves_only_its_own_contribution(tables, fitted, candidate):
    """The one-hot (linear) or ordinal (XGBoost) columns are summed back to the right raw feature.

    For XGBoost this needs an additive model: stumps (depth 1) have no interactions, so TreeSHAP credits each
    feature with a function of its own value only.
    """
    table = tables["mixed"]
    model = fitted["mixed", "sklearn"]
    if candidate == "xgboost":
        model = for_cpu_inference(build_xgboost(table.profile, 0, "cpu", n_estimators=30, max_depth=1))
        model.fit(table.x_train, table.y_train)
    rows = table.x_test.head(ROWS)
    plans = rows["plan"].dropna().unique()
    changed = one_feature_changed(rows, "plan", plans[0])
    before = contributions(model, rows, table.profile).contributions
    after = contributions(model, changed, table.profile).contributions
    moved = np.abs(after - before).max(axis=(0, 2))
    plan = list(rows.columns).index("plan")
    assert moved[plan] > 0
    np.testing.assert_allclose(np.delete(moved, plan), 0.0, atol=1e-6)


@pytest.fixture(scope="module")
def many_categories() -> tuple[Any, pd.DataFrame, pd.Series, pd.DataFrame]:
    """Wine (three classes) with a 300-category lot column that the profile marks high-cardinality."""
    from components.ingest.core import load_source

    frame = load_source("sklearn:wine")
    frame["lot"] = [f"lot{index % 300:03d}" for index in range(len(frame))]
    profile = build_profile(frame, "target", infer_task(frame["target"]), high_cardinality=["lot"])
    train, test = split(frame, "target", 0.25, seed=0, stratify=True)
    return profile, *split_target(train, profile), prepare_features(test, profile)


def test_target_encoded_columns_of_every_class_sum_back_to_their_feature(many_categories):
    profile, train, labels, test = many_categories
    model = as_saved(build_sklearn(profile, seed=0).fit(train, labels))
    explanation = contributions(model, test, profile)
    assert explanation.contributions.shape == (len(test), train.shape[1], 3)
    linked, answered = model_output(explanation, "multiclass", predict_output(model, profile.task, test))
    np.testing.assert_allclose(linked, answered, atol=1e-9)
    changed = one_feature_changed(test, "lot", "lot007")
    moved = np.abs(contributions(model, changed, profile).contributions - explanation.contributions).max(axis=(0, 2))
    lot = list(test.columns).index("lot")
    assert moved[lot] > 0
    np.testing.assert_allclose(np.delete(moved, lot), 0.0, atol=1e-9)


def test_sampling_is_exact_for_an_additive_model_and_gives_an_unused_feature_nothing(tables):
    table = tables["regression"]
    rows = table.x_test.head(5)

    def additive(frame: pd.DataFrame) -> np.ndarray:
        return (2.0 * frame["bmi"].to_numpy(dtype=float) - 3.0 * frame["s5"].to_numpy(dtype=float))[:, None]

    base, found = sampled_contributions(additive, rows, table.profile, seed=3)
    start = background(table.profile, seed=3)
    np.testing.assert_allclose(found[:, list(rows.columns).index("bmi"), 0], 2.0 * (rows["bmi"] - start["bmi"].mean()))
    np.testing.assert_allclose(found[:, list(rows.columns).index("s5"), 0], -3.0 * (rows["s5"] - start["s5"].mean()))
    others = [index for index, name in enumerate(rows.columns) if name not in ("bmi", "s5")]
    assert np.all(found[:, others, 0] == 0.0)
    np.testing.assert_allclose(base + found.sum(axis=1), additive(rows))


def test_sampling_is_seeded_and_its_background_follows_the_profile(tables, fitted):
    table = tables["mixed"]
    model, rows = fitted["mixed", "torch"], table.x_test.head(5)
    first, again = (contributions(model, rows, table.profile, seed=1).contributions for _ in range(2))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, contributions(model, rows, table.profile, seed=2).contributions)
    drawn = background(table.profile, rows=4000, seed=0)
    age, plan = table.profile.features["age"], table.profile.features["plan"]
    assert age.minimum <= drawn["age"].min()
    assert drawn["age"].max() <= age.maximum
    assert drawn["age"].isna().mean() == pytest.approx(age.missing_share, abs=0.02)
    assert set(drawn["plan"].dropna()) <= set(plan.categories)
    assert drawn["plan"].isna().mean() == pytest.approx(plan.missing_share, abs=0.02)


@pytest.mark.parametrize("candidate", ["sklearn", "torch"])
def test_a_missing_indicator_column_counts_for_its_own_feature(tables, candidate):
    """A mostly-empty numeric feature is imputed and flagged (two columns): both are credited to the feature."""
    table = tables["mixed"]
    features = dict(table.profile.features)
    features["income"] = replace(features["income"], missing_indicator=True)
    profile = replace(table.profile, features=features)
    build, saved, _ = CANDIDATES[candidate]
    model = saved(build(profile).fit(table.x_train, table.y_train))
    rows = table.x_test.head(ROWS)
    explanation = contributions(model, rows, profile)
    linked, answered = model_output(explanation, "mixed", predict_output(model, profile.task, rows))
    np.testing.assert_allclose(linked, answered, atol=1e-9)
    if candidate == "sklearn":  # additive: a missing income moves income's contribution alone
        changed = one_feature_changed(rows, "income", np.nan)
        moved = np.abs(contributions(model, changed, profile).contributions - explanation.contributions)
        income = list(rows.columns).index("income")
        assert moved.max(axis=(0, 2))[income] > 0
        np.testing.assert_allclose(np.delete(moved.max(axis=(0, 2)), income), 0.0, atol=1e-9)


def test_sampling_in_small_chunks_gives_the_same_contributions(tables, fitted, monkeypatch):
    table = tables["mixed"]
    model, rows = fitted["mixed", "torch"], table.x_test.head(4)
    whole = contributions(model, rows, table.profile).contributions
    monkeypatch.setattr(shapley, "MAX_WALK_ROWS", 1)  # one row per model call
    np.testing.assert_allclose(contributions(model, rows, table.profile).contributions, whole, rtol=1e-12, atol=1e-15)
