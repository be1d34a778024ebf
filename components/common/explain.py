"""Per-prediction explanations: how much each raw feature moved one model output, for every plinth candidate.

One function, `contributions(model, frame, profile)`, serves /explain, batch scoring and the register step.
Each row's contributions add up, with a base value, to the model's output in the units the Explanation names
(`base_values + contributions.sum(axis=1) == output`):

- XGBoost: TreeSHAP, XGBoost's own (`Booster.predict(pred_contribs=True)`, native categories), in margin units:
  the log-odds of the positive class (binary), each class's softmax logit (multiclass), the value (regression).
- The linear model: exact, coefficient x (transformed value - mean of the transformed training data), summed
  back per raw feature over its one-hot or target-encoded columns; log-odds / logits / value as above. The
  training mean is rebuilt from the fitted preprocessing and the reference profile (no training rows live
  beside a model): scaled numbers have mean 0, a one-hot column has its category's share, a target-encoded
  column the share-weighted mean of its encodings (categories the profile does not name share its "other" share).
- Anything else with `predict_proba`/`predict` (the torch MLP, HistGradientBoosting): sampling Shapley values
  against a background drawn from the reference profile, seeded (`shapley.py`), in probability units
  (classifiers) or the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder

from components.common.modeling import predict_output
from components.common.profile import MISSING_CATEGORY, FeatureProfile, ReferenceProfile
from components.common.shapley import sampled_contributions
from components.common.task import BINARY, REGRESSION

TREE_SHAP, LINEAR, SAMPLING = "tree_shap", "linear", "sampling_shapley"
LOG_ODDS, LOGIT, PROBABILITY, VALUE = "log_odds", "logit", "probability", "value"
# The output name of a regression model (classifiers' outputs are named by class).
PREDICTION = "prediction"


class NotExplainable(ValueError):
    """The model is not one whose contributions plinth can compute; the message says why."""


@dataclass(frozen=True)
class Explanation:
    """Contributions of each raw feature to each output, per row.

    base_values: (n, k); contributions: (n, p, k) for p `feature_names` and k `outputs` (binary: the positive
    class; multiclass: every class; regression: `prediction`), in `units`, found by `method`.
    """

    base_values: np.ndarray
    contributions: np.ndarray
    feature_names: list[str]
    outputs: list[str]
    units: str
    method: str

    @property
    def totals(self) -> np.ndarray:
        """Return base value + contributions per row and output: the model's output in `units`."""
        return np.asarray(self.base_values + self.contributions.sum(axis=1))

    def importance(self) -> dict[str, float]:
        """Return each feature's mean absolute contribution over the rows (and outputs), largest first."""
        means = np.abs(self.contributions).mean(axis=(0, 2))
        ranked = sorted(zip(self.feature_names, means.tolist(), strict=True), key=lambda item: -item[1])
        return dict(ranked)


def _parts(model: Any) -> tuple[Any, Any]:
    """Return (preprocessing or None, learner) of a candidate (`features.with_preprocessing`)."""
    if isinstance(model, Pipeline):
        steps = [step for _, step in model.steps]
        head = steps[0] if len(steps) == 2 else Pipeline(model.steps[:-1])
        return head, steps[-1]
    return None, model


def _column_owners(transformer: Any, columns: list[str]) -> list[str]:
    """Return the raw feature behind each output column of one ColumnTransformer part, in output order."""
    steps = [step for _, step in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
    first, last = steps[0], steps[-1]
    if isinstance(last, OneHotEncoder):
        return [column for column, categories in zip(columns, last.categories_, strict=True) for _ in categories]
    if isinstance(last, TargetEncoder):
        per_feature = len(last.classes_) if last.target_type_ == "multiclass" else 1
        return [column for column in columns for _ in range(per_feature)]
    indicator = getattr(first, "indicator_", None) if isinstance(first, SimpleImputer) else None
    flagged = [columns[index] for index in indicator.features_] if indicator is not None else []
    return [*columns, *flagged]  # an imputer's missing indicators follow the imputed columns


def _parts_of(preprocessing: ColumnTransformer) -> list[tuple[Any, list[str]]]:
    """Return each fitted part of a ColumnTransformer with the owner of each of its output columns."""
    parts = []
    for name, transformer, columns in preprocessing.transformers_:
        if transformer == "drop" or name == "remainder":
            continue
        owners = _column_owners(transformer, list(columns))
        span = preprocessing.output_indices_[name]
        if len(owners) != span.stop - span.start:
            raise NotExplainable(f"cannot map the {name} columns of the preprocessing back to the raw features")
        parts.append((transformer, owners))
    return parts


def _owners(preprocessing: Any, names: list[str]) -> np.ndarray:
    """Return the raw feature index behind each column the preprocessing outputs."""
    if not isinstance(preprocessing, ColumnTransformer):
        return np.arange(len(names))
    return np.asarray([names.index(owner) for _, owners in _parts_of(preprocessing) for owner in owners])


def _shares(stats: FeatureProfile, categories: Any) -> np.ndarray:
    """Return the reference share of each category name; unnamed ones split the profile's "other" share."""
    present = 1.0 - stats.missing_share
    named = dict(zip(stats.categories, (share * present for share in stats.bin_shares), strict=False))
    named[MISSING_CATEGORY] = stats.missing_share
    unnamed = [str(category) not in named for category in categories]
    other = stats.bin_shares[-1] * present if stats.bin_shares else 0.0
    each = other / max(sum(unnamed), 1)
    return np.array([named.get(str(category), each) for category in categories])


def _training_means(preprocessing: Any, profile: ReferenceProfile) -> np.ndarray:
    """Return the mean of each transformed training column (see the module docstring)."""
    if isinstance(preprocessing, StandardScaler):
        return np.zeros(preprocessing.n_features_in_)
    means: list[float] = []
    for transformer, owners in _parts_of(preprocessing):
        last = transformer.steps[-1][1] if isinstance(transformer, Pipeline) else transformer
        columns = list(dict.fromkeys(owners))
        stats = [profile.features[column] for column in columns]
        if isinstance(last, StandardScaler):
            means.extend([0.0] * len(owners))
        elif isinstance(last, OneHotEncoder):
            for feature, categories in zip(stats, last.categories_, strict=True):
                means.extend(_shares(feature, categories).tolist())
        elif isinstance(last, TargetEncoder):
            per_feature = len(last.encodings_) // len(columns)
            for index, feature in enumerate(stats):
                shares = _shares(feature, last.categories_[index])
                for encoding in last.encodings_[index * per_feature : (index + 1) * per_feature]:
                    means.append(float(shares @ encoding + (1 - shares.sum()) * np.mean(last.target_mean_)))
        elif isinstance(last, SimpleImputer):
            for feature, median in zip(stats, last.statistics_, strict=True):
                means.append(feature.mean * (1 - feature.missing_share) + median * feature.missing_share)
            means.extend(profile.features[owner].missing_share for owner in owners[len(columns) :])
        else:
            means.extend(feature.mean for feature in stats)
    return np.asarray(means)


def _summed(columns: Any, owners: np.ndarray, features: int) -> np.ndarray:
    """Sum per-column values (n, m), dense or sparse, into their raw features (n, p)."""
    gather = sparse.csr_matrix((np.ones(len(owners)), (np.arange(len(owners)), owners)), shape=(len(owners), features))
    return np.asarray((columns @ gather).toarray() if sparse.issparse(columns) else columns @ gather.toarray())


def _linear(preprocessing: Any, learner: Any, frame: pd.DataFrame, profile: ReferenceProfile) -> tuple[Any, Any]:
    """Return (base (k,), contributions (n, p, k)) of a linear model's decision function."""
    transformed = preprocessing.transform(frame) if preprocessing is not None else frame.to_numpy(dtype=float)
    if preprocessing is None:
        means = np.array([profile.features[name].mean for name in frame.columns])
    else:
        means = _training_means(preprocessing, profile)
    owners = _owners(preprocessing, list(frame.columns))
    weights = np.atleast_2d(learner.coef_)
    intercepts = np.atleast_1d(learner.intercept_)
    result = np.zeros((len(frame), frame.shape[1], len(weights)))
    for output, row in enumerate(weights):
        scaled = transformed.multiply(row).tocsr() if sparse.issparse(transformed) else transformed * row
        result[:, :, output] = _summed(scaled, owners, frame.shape[1]) - _summed(
            (means * row)[None, :], owners, frame.shape[1]
        )
    return weights @ means + intercepts, result


def _tree(preprocessing: Any, learner: Any, frame: pd.DataFrame) -> tuple[Any, Any]:
    """Return (base (n, k), contributions (n, p, k)) from XGBoost's own TreeSHAP, in margin units."""
    import xgboost

    booster = learner.get_booster()
    transformed = preprocessing.transform(frame) if preprocessing is not None else frame
    matrix = xgboost.DMatrix(
        transformed, feature_names=booster.feature_names, feature_types=booster.feature_types, enable_categorical=True
    )
    raw = booster.predict(matrix, pred_contribs=True).astype(np.float64)
    raw = raw[:, None, :] if raw.ndim == 2 else raw  # (n, k, m + 1)
    owners = _owners(preprocessing, list(frame.columns))
    result = np.stack([_summed(raw[:, k, :-1], owners, frame.shape[1]) for k in range(raw.shape[1])], axis=2)
    return raw[:, :, -1], result


def _xgboost_learner(learner: Any) -> Any:
    """Return the fitted XGBoost model inside a learner (a label-encoding wrapper or itself), or None."""
    try:
        from xgboost import XGBModel
    except ImportError:  # an image without XGBoost serves no XGBoost model either
        return None
    inner = getattr(learner, "estimator_", learner)
    return inner if isinstance(inner, XGBModel) else None


def _is_linear(learner: Any) -> bool:
    """Return True for scikit-learn's linear models (a coefficient per transformed column)."""
    return type(learner).__module__.startswith("sklearn.linear_model") and hasattr(learner, "coef_")


def contributions(model: Any, frame: pd.DataFrame, profile: ReferenceProfile, seed: int = 0) -> Explanation:
    """Return the per-feature contributions of `model` (a plinth candidate) for the typed rows of `frame`.

    `frame` is what the model scores (`features.prepare_features`, or the service's typed batch); `profile`
    is the model's reference profile (task, and the background of the sampling explainer); `seed` fixes the
    sampling explainer's background and permutations (the other methods are exact).

    Raises:
        NotExplainable: the model's preprocessing cannot be mapped back to its raw features.
    """
    task = profile.task
    names = list(frame.columns)
    outputs = (
        [PREDICTION] if task.kind == REGRESSION else [str(task.classes[1])] if task.kind == BINARY else task.class_names
    )
    margin = VALUE if task.kind == REGRESSION else LOG_ODDS if task.kind == BINARY else LOGIT
    preprocessing, learner = _parts(model)
    tree = _xgboost_learner(learner)
    if tree is not None:
        base, result = _tree(preprocessing, tree, frame)
        return Explanation(base, result, names, outputs, margin, TREE_SHAP)
    if _is_linear(learner):
        base, result = _linear(preprocessing, learner, frame, profile)
        return Explanation(np.tile(base, (len(frame), 1)), result, names, outputs, margin, LINEAR)

    def output(rows: pd.DataFrame) -> np.ndarray:
        scored = predict_output(model, task, rows)
        return scored.reshape(-1, 1) if task.kind == REGRESSION else scored[:, 1:] if task.kind == BINARY else scored

    base, result = sampled_contributions(output, frame, profile, seed)
    units = VALUE if task.kind == REGRESSION else PROBABILITY
    return Explanation(np.tile(base, (len(frame), 1)), result, names, outputs, units, SAMPLING)
