"""The XGBoost candidate: histogram gradient boosting, on the GPU when one is visible.

XGBoost wants class labels 0..k-1 and handles missing numbers itself, so the learner is wrapped in a label
encoder and sits behind the shared preprocessing without imputation or scaling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder
from xgboost import XGBClassifier, XGBModel, XGBRegressor

from components.common.features import build_preprocessor, with_preprocessing
from components.common.profile import ReferenceProfile


class LabelEncodedClassifier(ClassifierMixin, BaseEstimator):
    """Fits `estimator` on class indices and answers in the original labels (`classes_` sorted)."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, features: Any, labels: Any) -> LabelEncodedClassifier:
        """Encode the labels, then fit a clone of the wrapped estimator on the indices."""
        self.encoder_ = LabelEncoder().fit(np.asarray(labels))
        self.classes_ = self.encoder_.classes_
        self.estimator_ = clone(self.estimator).fit(features, self.encoder_.transform(np.asarray(labels)))
        return self

    def predict_proba(self, features: Any) -> np.ndarray:
        """Return one probability column per class, in `classes_` order."""
        return np.asarray(self.estimator_.predict_proba(features))

    def predict(self, features: Any) -> np.ndarray:
        """Return the most likely label per row."""
        return np.asarray(self.classes_[np.argmax(self.predict_proba(features), axis=1)])


def build_model(
    profile: ReferenceProfile, seed: int, device: str, n_estimators: int = 200, max_depth: int = 4
) -> BaseEstimator:
    """Return the unfitted estimator for `profile`'s task on `device` ("cuda" or "cpu")."""
    common: dict[str, Any] = {
        "n_estimators": n_estimators,
        "max_depth": max_depth,
        "learning_rate": 0.1,
        "tree_method": "hist",
        "device": device,
        "random_state": seed,
        "n_jobs": 2,
    }
    if profile.task.is_classification:
        learner: BaseEstimator = LabelEncodedClassifier(XGBClassifier(eval_metric="logloss", **common))
    else:
        learner = XGBRegressor(eval_metric="rmse", **common)
    return with_preprocessing(build_preprocessor(profile, scale=False, impute=False), learner)


def for_cpu_inference(model: Any) -> Any:
    """Pin a fitted model to CPU prediction: serving pods have no GPU, and a CUDA model would warn per call."""
    learner = model.steps[-1][1] if isinstance(model, Pipeline) else model
    booster = getattr(learner, "estimator_", learner)
    if isinstance(booster, XGBModel):
        params: dict[str, Any] = {"device": "cpu"}
        booster.set_params(**params)
    return model
