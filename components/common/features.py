"""Feature preprocessing that every candidate shares, so each registered model takes the raw columns.

The profile says which features are numeric and which categorical, and which had missing values. From it
come (1) the typed feature frame that training, evaluation and the signature see, and (2) the
preprocessing step in front of each learner: missing numbers imputed with the median (and scaled for the
linear and neural candidates), categories one-hot encoded with unseen categories ignored. A table whose
features are all numeric and complete keeps today's plain scaler: nothing to impute or encode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from components.common.profile import ReferenceProfile, category_strings


def prepare_features(frame: pd.DataFrame, profile: ReferenceProfile) -> pd.DataFrame:
    """Return the feature columns in training order, typed as the model and its signature expect.

    Numeric features become float64 (JSON integers and floats are both numbers to them). A categorical
    integer column that can be missing becomes float64 too: an integer column cannot hold a null, and its
    categories are named the same either way (`category_strings`).
    """
    columns = {}
    for name, stats in profile.features.items():
        series = frame[name]
        if stats.is_numeric or (pd.api.types.is_integer_dtype(series) and stats.optional):
            series = pd.to_numeric(series, errors="coerce").astype("float64")
        columns[name] = series
    return pd.DataFrame(columns, index=frame.index)


def split_target(frame: pd.DataFrame, profile: ReferenceProfile) -> tuple[pd.DataFrame, pd.Series]:
    """Split a dataset into the typed feature frame and the target series."""
    return prepare_features(frame, profile), frame[profile.target]


def category_frame(features: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Return categorical columns as category names (module-level: the model file names it, see TRUSTED_TYPES)."""
    values = np.asarray(features, dtype=object)
    return category_strings(values).reshape(values.shape)


def needs_encoding(profile: ReferenceProfile) -> bool:
    """Return True when some feature is categorical or can be missing."""
    return any(not stats.is_numeric or stats.optional for stats in profile.features.values())


def build_preprocessor(profile: ReferenceProfile, scale: bool = True, impute: bool = True) -> BaseEstimator | None:
    """Return the preprocessing step for `profile`'s features, or None when the learner takes them as they are.

    `scale` standardises numeric features (linear and neural learners need it, trees do not); `impute`
    fills missing numbers with the training median (XGBoost handles missing values itself).
    """
    numeric = [name for name, stats in profile.features.items() if stats.is_numeric]
    categorical = [name for name, stats in profile.features.items() if not stats.is_numeric]
    if not needs_encoding(profile):
        return StandardScaler() if scale else None
    numeric_steps: list[tuple[str, Any]] = []
    if impute:
        numeric_steps.append(("impute", SimpleImputer(strategy="median")))
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    encode = Pipeline(
        [
            ("names", FunctionTransformer(category_frame, feature_names_out="one-to-one")),
            ("one_hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(("numeric", Pipeline(numeric_steps) if numeric_steps else "passthrough", numeric))
    if categorical:
        transformers.append(("categorical", encode, categorical))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)


def with_preprocessing(preprocessor: BaseEstimator | None, learner: BaseEstimator) -> BaseEstimator:
    """Return `learner` behind `preprocessor` as one scikit-learn pipeline (the learner alone without one)."""
    if preprocessor is None:
        return learner
    return Pipeline([("features", preprocessor), ("learn", learner)])
