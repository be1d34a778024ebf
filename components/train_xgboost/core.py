"""The XGBoost candidate: histogram gradient boosting, on the GPU when one is visible.

XGBoost wants class labels 0..k-1 and handles missing numbers itself, so the learner is wrapped in a label
encoder and sits behind the shared preprocessing without imputation or scaling. Categories reach it as fixed
ordinal codes marked "c" in `feature_types`, and it splits on them natively (`enable_categorical`): one
column per categorical feature at any cardinality, where one-hot columns made a million rows of a
100-category column 100 dense float columns.

The fit has a time budget: `TimeBudget` stops boosting after the round that crosses it, keeping the trees
grown so far, and says so. The callback is taken off the fitted model before it is saved (`for_cpu_inference`),
so the saved file holds no plinth callback object.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_sample_weight
from xgboost import XGBClassifier, XGBModel, XGBRegressor, collective
from xgboost.callback import TrainingCallback

from components.common.features import build_preprocessor, feature_types, with_preprocessing
from components.common.profile import ReferenceProfile

# Seconds one fit may take by default (the pipeline's `time_budget_s` parameter sets it per run).
DEFAULT_TIME_BUDGET_S = 600.0


class TimeBudget(TrainingCallback):
    """Stop boosting once `seconds` have passed since training began; the rounds so far are kept."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.started = 0.0
        self.stopped_at: int | None = None

    def before_training(self, model: Any) -> Any:
        """Start the clock."""
        self.started = time.monotonic()
        self.stopped_at = None
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        """Return True (stop) after the round in which the budget ran out (on any worker, when distributed).

        Under `xgboost.dask` every worker runs this callback on its own clock, and a worker that stopped
        alone would leave the others waiting in the next round's allreduce: the workers agree by taking the
        maximum of their votes.
        """
        spent = time.monotonic() - self.started >= self.seconds
        if collective.get_world_size() > 1:
            spent = bool(collective.allreduce(np.array([int(spent)], dtype=np.int32), collective.Op.MAX)[0])
        if not spent:
            return False
        self.stopped_at = epoch + 1
        print(f"train xgboost: time budget of {self.seconds:g}s reached after {epoch + 1} rounds; keeping them")
        return True


class LabelEncodedClassifier(ClassifierMixin, BaseEstimator):
    """Fits `estimator` on class indices and answers in the original labels (`classes_` sorted).

    `class_weight="balanced"` weighs each row inversely to its class's frequency (sample weights, which
    XGBoost takes for any number of classes; `scale_pos_weight` would cover the binary case only).
    """

    def __init__(self, estimator: Any, class_weight: str | None = None) -> None:
        self.estimator = estimator
        self.class_weight = class_weight

    def fit(self, features: Any, labels: Any) -> LabelEncodedClassifier:
        """Encode the labels, then fit a clone of the wrapped estimator on the indices (weighted if asked)."""
        self.encoder_ = LabelEncoder().fit(np.asarray(labels))
        self.classes_ = self.encoder_.classes_
        indices = self.encoder_.transform(np.asarray(labels))
        weights = None if self.class_weight is None else compute_sample_weight(self.class_weight, indices)
        self.estimator_ = clone(self.estimator).fit(features, indices, sample_weight=weights)
        return self

    def predict_proba(self, features: Any) -> np.ndarray:
        """Return one probability column per class, in `classes_` order."""
        return np.asarray(self.estimator_.predict_proba(features))

    def predict(self, features: Any) -> np.ndarray:
        """Return the most likely label per row."""
        return np.asarray(self.classes_[np.argmax(self.predict_proba(features), axis=1)])


def build_model(
    profile: ReferenceProfile,
    seed: int,
    device: str,
    n_estimators: int = 200,
    max_depth: int = 4,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
    learning_rate: float = 0.1,
    min_child_weight: float = 1.0,
    subsample: float = 1.0,
    colsample_bytree: float = 1.0,
    reg_lambda: float = 1.0,
    class_weight: str | None = None,
    n_jobs: int = 2,
) -> BaseEstimator:
    """Return the unfitted estimator for `profile`'s task on `device` ("cuda" or "cpu").

    The keywords after `device` are the searched parameters (components/search); their defaults are the
    fixed settings. `time_budget_s` bounds the boosting: rounds stop after the one that crosses it.
    `class_weight` ("balanced" or None) applies to classification only. `n_jobs` threads fit it (the search's
    short trials take one: XGBoost's OpenMP threads spin when the cores are busy, measured on a loaded 2-core
    machine at 7.1 s a fit of 364 rows with two threads and 0.49 s with one).
    """
    preprocessor = build_preprocessor(profile, scale=False, impute=False, native_categories=True)
    common: dict[str, Any] = {
        "n_estimators": n_estimators,
        "max_depth": max_depth,
        "learning_rate": learning_rate,
        "min_child_weight": min_child_weight,
        "subsample": subsample,
        "colsample_bytree": colsample_bytree,
        "reg_lambda": reg_lambda,
        "tree_method": "hist",
        "device": device,
        "random_state": seed,
        "n_jobs": n_jobs,
        "callbacks": [TimeBudget(time_budget_s)],
    }
    if preprocessor is not None:  # the encoded columns: numbers first, then category codes
        common.update(enable_categorical=True, feature_types=feature_types(profile))
    if profile.task.is_classification:
        learner: BaseEstimator = LabelEncodedClassifier(XGBClassifier(eval_metric="logloss", **common), class_weight)
    else:
        learner = XGBRegressor(eval_metric="rmse", **common)
    return with_preprocessing(preprocessor, learner)


def fitted_booster(model: Any) -> XGBModel | None:
    """Return the fitted XGBoost estimator inside a candidate (pipeline, label encoder), or None."""
    learner = model.steps[-1][1] if isinstance(model, Pipeline) else model
    booster = getattr(learner, "estimator_", learner)
    return booster if isinstance(booster, XGBModel) else None


def for_cpu_inference(model: Any) -> Any:
    """Pin a fitted model to CPU prediction and drop its training callbacks before it is saved.

    Serving pods have no GPU, and a CUDA model would warn per call; the time budget's callback is a
    training-time object that the model file has no business naming (skops would refuse to load it).
    """
    learner = model.steps[-1][1] if isinstance(model, Pipeline) else model
    # The fitted estimator, and the unfitted template a LabelEncodedClassifier clones it from.
    for estimator in (learner, getattr(learner, "estimator", None), getattr(learner, "estimator_", None)):
        if isinstance(estimator, XGBModel):
            params: dict[str, Any] = {"device": "cpu", "callbacks": None}
            estimator.set_params(**params)
    return model
