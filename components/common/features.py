"""Feature preprocessing that every candidate shares, so each registered model takes the raw columns.

The profile says which features are numeric and which categorical, and which had missing values. From it
come (1) the typed feature frame that training, evaluation and the signature see, and (2) the
preprocessing step in front of each learner: missing numbers imputed with the median (and scaled for the
linear and neural candidates), categories one-hot encoded with unseen categories ignored. A table whose
features are all numeric and complete keeps today's plain scaler: nothing to impute or encode.

Categories reach a learner in one of three ways, so that a million rows with a zip-code column still fit:
- ONE_HOT: one column per category (linear and neural learners, at most validation's `max_categories`);
- TARGET: a high-cardinality column (more than `max_categories`, marked in the profile by validation)
  becomes its cross-fitted target mean per category (scikit-learn's TargetEncoder; one column per class for
  multiclass), so the width does not grow with the number of categories;
- ORDINAL: each category becomes a fixed code (unseen categories missing), which XGBoost splits on natively
  (`enable_categorical` with `feature_types`), at any cardinality.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder

from components.common.profile import MISSING_CATEGORY, ReferenceProfile, category_strings


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


def distinct_rows(frame: pd.DataFrame, head: int = 100) -> pd.DataFrame:
    """Return the first `head` rows plus, per non-numeric column, the first row of each distinct (type, value).

    MLflow infers a column's type from its dtype, except for object and text columns, whose every value it
    checks in Python (a minute per 200,000 rows and three text columns). The rows returned hold every distinct
    value of those columns with its Python type, so a schema inferred from them is the whole frame's, and a
    numeric column's dtype is the same in any rows.
    """
    keep = np.zeros(len(frame), dtype=bool)
    keep[:head] = True
    for name in frame.columns:
        column = frame[name]
        missing = column.isna().to_numpy()
        if missing.any():  # a missing value makes the column optional: keep one
            keep[int(np.argmax(missing))] = True
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        if pd.api.types.infer_dtype(column, skipna=True) == "string":
            keep |= ~column.duplicated(keep="first").to_numpy()
            continue
        values = column.astype(object)
        keyed = pd.DataFrame({"type": values.map(lambda value: type(value).__name__).to_numpy(), "value": values})
        keep |= ~keyed.duplicated(keep="first").to_numpy()
    return frame[keep]


def split_target(frame: pd.DataFrame, profile: ReferenceProfile) -> tuple[pd.DataFrame, pd.Series]:
    """Split a dataset into the typed feature frame and the target series."""
    return prepare_features(frame, profile), frame[profile.target]


# Columns whose values `pd.factorize` never merges under two different category names (booleans mixed with
# numbers would: `True == 1`).
SAFE_TO_FACTORIZE = frozenset({"string", "boolean", "integer", "floating", "mixed-integer-float", "decimal", "empty"})


def category_frame(features: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Return categorical columns as category names (module-level: the model file names it, see TRUSTED_TYPES).

    Names each column's distinct values once and takes them by code: naming every row in Python cost about
    five seconds per million rows and column, in every fit and every scoring of a large table. A column that
    mixes booleans with numbers is named value by value, since `True == 1` would share a code.
    """
    values = np.asarray(features, dtype=object)
    if values.ndim != 2:
        return category_strings(values).reshape(values.shape)
    named = np.empty(values.shape, dtype=object)
    for column in range(values.shape[1]):
        if pd.api.types.infer_dtype(values[:, column], skipna=True) not in SAFE_TO_FACTORIZE:
            named[:, column] = category_strings(values[:, column])
            continue
        codes, uniques = pd.factorize(values[:, column], use_na_sentinel=True)
        names = np.append(category_strings(uniques), MISSING_CATEGORY)
        named[:, column] = names[codes]  # code -1 (missing) takes the last name
    return named


def needs_encoding(profile: ReferenceProfile) -> bool:
    """Return True when some feature is categorical or can be missing."""
    return any(not stats.is_numeric or stats.optional for stats in profile.features.values())


ONE_HOT, TARGET, ORDINAL = "one_hot", "target", "ordinal"
# A sparse-capable learner gets a sparse matrix when at most this share of the encoded values is non-zero.
SPARSE_THRESHOLD = 0.3
# TargetEncoder's target type per task kind (binary, multiclass, regression).
TARGET_TYPES = {"binary": "binary", "multiclass": "multiclass", "regression": "continuous"}


def categorical_groups(profile: ReferenceProfile) -> tuple[list[str], list[str]]:
    """Return (categorical features with few categories, high-cardinality ones), in training order."""
    few = [name for name, stats in profile.features.items() if not stats.is_numeric and not stats.high_cardinality]
    many = [name for name, stats in profile.features.items() if not stats.is_numeric and stats.high_cardinality]
    return few, many


def _encoder(profile: ReferenceProfile, how: str, sparse: bool = False) -> Pipeline:
    """Return category naming followed by the encoder `how` names (one-hot columns sparse if `sparse`)."""
    encoder: BaseEstimator
    if how == ORDINAL:
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, dtype=np.float64)
    elif how == TARGET:
        encoder = TargetEncoder(target_type=TARGET_TYPES[profile.task.kind], random_state=0)
    else:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=sparse)
    return Pipeline([("names", FunctionTransformer(category_frame, feature_names_out="one-to-one")), (how, encoder)])


def build_preprocessor(
    profile: ReferenceProfile,
    scale: bool = True,
    impute: bool = True,
    native_categories: bool = False,
    sparse: bool = False,
    target_high_cardinality: bool = False,
) -> BaseEstimator | None:
    """Return the preprocessing step for `profile`'s features, or None when the learner takes them as they are.

    `scale` standardises numeric features (linear and neural learners need it, trees do not); `impute`
    fills missing numbers with the training median (XGBoost handles missing values itself) in every numeric
    feature, also in a table that had no gaps in training (a request may have one: the signature says so), and
    adds a missing-indicator column after each feature the profile marks `missing_indicator`;
    `native_categories` gives every categorical feature as an ordinal code for a learner that splits on
    categories itself (XGBoost; `feature_types` says which output columns they are), else few categories
    are one-hot encoded and high-cardinality ones target encoded. Numeric columns come first in the output.
    `sparse` lets the output be a sparse matrix when most of it is one-hot zeros (a learner that takes one:
    the linear model; at a million rows dense one-hot columns were the step's largest array).
    `target_high_cardinality` keeps high-cardinality features target encoded (after the ordinal codes) for a
    native learner with a category limit (HistGradientBoosting: at most 255 categories per feature).
    """
    numeric = [name for name, stats in profile.features.items() if stats.is_numeric]
    few, many = categorical_groups(profile)
    if not needs_encoding(profile) and not impute:
        return StandardScaler() if scale else None
    # A mostly-empty numeric feature (validation's `indicator_missing_share`) also says *that* it was missing.
    indicated = [name for name in numeric if impute and profile.features[name].missing_indicator]
    numeric = [name for name in numeric if name not in indicated]
    scaler = [("scale", StandardScaler())] if scale else []
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))] if impute else []
    numeric_steps += scaler
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(("numeric", Pipeline(numeric_steps) if numeric_steps else "passthrough", numeric))
    if indicated:
        indicator = SimpleImputer(strategy="median", add_indicator=True)
        transformers.append(("indicated", Pipeline([("impute", indicator), *scaler]), indicated))
    native = few if target_high_cardinality else few + many
    if native_categories and native:
        transformers.append(("categorical", _encoder(profile, ORDINAL), native))
    if not native_categories and few:
        transformers.append(("categorical", _encoder(profile, ONE_HOT, sparse), few))
    if many and (not native_categories or target_high_cardinality):
        transformers.append(("high_cardinality", _encoder(profile, TARGET), many))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=SPARSE_THRESHOLD if sparse else 0.0)


def feature_types(profile: ReferenceProfile) -> list[str]:
    """Return XGBoost's type per column of `build_preprocessor(native_categories=True)`: "q" numeric, "c" category."""
    numeric = sum(1 for stats in profile.features.values() if stats.is_numeric)
    return ["q"] * numeric + ["c"] * (len(profile.features) - numeric)


def with_preprocessing(preprocessor: BaseEstimator | None, learner: BaseEstimator) -> BaseEstimator:
    """Return `learner` behind `preprocessor` as one scikit-learn pipeline (the learner alone without one)."""
    if preprocessor is None:
        return learner
    return Pipeline([("features", preprocessor), ("learn", learner)])
