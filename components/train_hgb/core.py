"""The HistGradientBoosting candidate: scikit-learn's histogram boosting, splitting on categories natively.

Categories reach it as the shared preprocessing's fixed ordinal codes (`features.build_preprocessor` with
`native_categories=True`), marked in `categorical_features`, and each split groups categories by their
gradient statistics, as LightGBM does. HistGradientBoosting takes at most 255 categories per feature (its
`max_bins`), so a high-cardinality feature (more than validation's `max_categories`, marked in the profile)
stays target encoded (cross-fitted, `TargetEncoder`) and enters as a number. Missing numbers go in as they
are: the learner sends them down the side of each split that lowers the loss.

Boosting stops early on the learner's own validation fraction of the training rows (`validation_fraction`),
never on the pipeline's validation or test rows. HistGradientBoosting has no callback to stop on a clock, so
the fit runs in warm-started chunks of CHUNK_ITER rounds and stops after the chunk that crosses the time
budget, keeping the rounds so far; `max_iter` bounds it in any case. The fit runs on N_THREADS OpenMP
threads: HistGradientBoosting otherwise takes one per core it sees, and OpenMP threads that wait on busy or
CPU-limited cores spin (on this 2-core machine at load 10, the built-in table took 8.3 s on 2 threads and
0.56 s on one). The budgeted classes are training-time types only: `as_saved` turns the fitted model into the
plain scikit-learn estimator it amounts to, so the model file names nothing beyond scikit-learn (see
`modeling.TRUSTED_TYPES`).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from components.common.features import build_preprocessor, categorical_groups, with_preprocessing
from components.common.profile import ReferenceProfile

# Seconds one fit may take by default (the pipeline's `time_budget_s` parameter sets it per run).
DEFAULT_TIME_BUDGET_S = 600.0
# Rounds per warm-started chunk: the clock is read between chunks.
CHUNK_ITER = 50
# The most rounds a fit may take; early stopping usually ends it well before.
MAX_ITER = 500
# OpenMP threads of one fit (see the module docstring).
N_THREADS = 1
# The share of the training rows held out by the learner for early stopping, and the patience in rounds.
VALIDATION_FRACTION, PATIENCE = 0.1, 20
# The parameters the budgeted learner shares with the plain one (the searched ones among them).
SHARED = (
    "learning_rate",
    "max_iter",
    "max_leaf_nodes",
    "min_samples_leaf",
    "l2_regularization",
    "categorical_features",
    "early_stopping",
    "validation_fraction",
    "n_iter_no_change",
    "random_state",
)


def _fit_in_chunks(learner: Any, plain: Any, features: Any, labels: Any, sample_weight: Any) -> Any:
    """Fit `plain` (warm-started) CHUNK_ITER rounds at a time until early stopping, max_iter or the budget.

    Copies the fitted state onto `learner` and returns it.
    """
    started, limit = time.monotonic(), learner.max_iter
    learner.stopped_by_budget_ = False
    plain.set_params(warm_start=True, max_iter=min(CHUNK_ITER, limit))
    while True:
        with threadpool_limits(limits=learner.n_threads, user_api="openmp"):
            plain.fit(features, labels, sample_weight=sample_weight)
        if plain.n_iter_ < plain.max_iter or plain.n_iter_ >= limit:
            break  # stopped early on its validation fraction, or at max_iter
        if time.monotonic() - started >= learner.time_budget_s:
            learner.stopped_by_budget_ = True
            print(f"train hgb: time budget of {learner.time_budget_s:g}s reached after {plain.n_iter_} rounds")
            break
        plain.set_params(max_iter=min(plain.n_iter_ + CHUNK_ITER, limit))
    params = set(plain.get_params())
    learner.__dict__.update({key: value for key, value in vars(plain).items() if key not in params})
    return learner


class BudgetedHGBClassifier(HistGradientBoostingClassifier):
    """HistGradientBoostingClassifier that stops at a time budget with the rounds it has (training only)."""

    def __init__(
        self,
        learning_rate: float = 0.1,
        max_iter: int = MAX_ITER,
        max_leaf_nodes: int | None = 31,
        min_samples_leaf: int = 20,
        l2_regularization: float = 0.0,
        categorical_features: Any = None,
        early_stopping: bool = True,
        validation_fraction: float = VALIDATION_FRACTION,
        n_iter_no_change: int = PATIENCE,
        random_state: int | None = None,
        class_weight: Any = None,
        time_budget_s: float = DEFAULT_TIME_BUDGET_S,
        n_threads: int = N_THREADS,
    ) -> None:
        super().__init__(
            learning_rate=learning_rate,
            max_iter=max_iter,
            max_leaf_nodes=max_leaf_nodes,
            min_samples_leaf=min_samples_leaf,
            l2_regularization=l2_regularization,
            categorical_features=categorical_features,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            random_state=random_state,
            class_weight=class_weight,
        )
        self.time_budget_s = time_budget_s
        self.n_threads = n_threads

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BudgetedHGBClassifier:
        """Fit in warm-started chunks until early stopping, `max_iter` or the time budget."""
        return _fit_in_chunks(self, as_plain(self), X, y, sample_weight)


class BudgetedHGBRegressor(HistGradientBoostingRegressor):
    """HistGradientBoostingRegressor that stops at a time budget with the rounds it has (training only)."""

    def __init__(
        self,
        learning_rate: float = 0.1,
        max_iter: int = MAX_ITER,
        max_leaf_nodes: int | None = 31,
        min_samples_leaf: int = 20,
        l2_regularization: float = 0.0,
        categorical_features: Any = None,
        early_stopping: bool = True,
        validation_fraction: float = VALIDATION_FRACTION,
        n_iter_no_change: int = PATIENCE,
        random_state: int | None = None,
        time_budget_s: float = DEFAULT_TIME_BUDGET_S,
        n_threads: int = N_THREADS,
    ) -> None:
        super().__init__(
            learning_rate=learning_rate,
            max_iter=max_iter,
            max_leaf_nodes=max_leaf_nodes,
            min_samples_leaf=min_samples_leaf,
            l2_regularization=l2_regularization,
            categorical_features=categorical_features,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            random_state=random_state,
        )
        self.time_budget_s = time_budget_s
        self.n_threads = n_threads

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BudgetedHGBRegressor:
        """Fit in warm-started chunks until early stopping, `max_iter` or the time budget."""
        return _fit_in_chunks(self, as_plain(self), X, y, sample_weight)


def as_plain(learner: BudgetedHGBClassifier | BudgetedHGBRegressor) -> BaseEstimator:
    """Return the unfitted plain scikit-learn estimator with the budgeted one's parameters."""
    params = {name: getattr(learner, name) for name in SHARED}
    if isinstance(learner, BudgetedHGBClassifier):
        return HistGradientBoostingClassifier(class_weight=learner.class_weight, **params)
    return HistGradientBoostingRegressor(**params)


def as_saved(model: Any) -> Any:
    """Replace a fitted budgeted learner (alone or last in a pipeline) by the plain one it amounts to."""
    steps = model.steps if isinstance(model, Pipeline) else None
    learner = steps[-1][1] if steps else model
    if not isinstance(learner, BudgetedHGBClassifier | BudgetedHGBRegressor):
        return model
    plain = as_plain(learner)
    params = set(learner.get_params())
    fitted = {key: value for key, value in vars(learner).items() if key not in params}
    fitted.pop("stopped_by_budget_", None)
    plain.__dict__.update(fitted)
    if steps is None:
        return plain
    steps[-1] = (steps[-1][0], plain)
    return model


def categorical_mask(profile: ReferenceProfile) -> np.ndarray | None:
    """Return which preprocessed columns are category codes (numbers first, then codes, then target encodings)."""
    numeric = sum(1 for stats in profile.features.values() if stats.is_numeric)
    few, many = categorical_groups(profile)
    if not few:
        return None
    per_encoded = len(profile.task.classes) if profile.task.kind == "multiclass" else 1
    return np.array([False] * numeric + [True] * len(few) + [False] * (len(many) * per_encoded))


def build_model(
    profile: ReferenceProfile,
    seed: int,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
    learning_rate: float = 0.1,
    max_leaf_nodes: int = 31,
    min_samples_leaf: int = 20,
    l2_regularization: float = 0.0,
    class_weight: str | None = None,
    max_iter: int = MAX_ITER,
) -> BaseEstimator:
    """Return the unfitted estimator for `profile`'s task, with the searched parameters given.

    `class_weight` ("balanced" or None) applies to classification only; `time_budget_s` stops the boosting
    after the chunk of rounds that crosses it.
    """
    preprocessor = build_preprocessor(
        profile, scale=False, impute=False, native_categories=True, target_high_cardinality=True
    )
    common: dict[str, Any] = {
        "learning_rate": learning_rate,
        "max_iter": max_iter,
        "max_leaf_nodes": max_leaf_nodes,
        "min_samples_leaf": min_samples_leaf,
        "l2_regularization": l2_regularization,
        "categorical_features": categorical_mask(profile),
        "random_state": seed,
        "time_budget_s": time_budget_s,
    }
    if profile.task.is_classification:
        learner: BaseEstimator = BudgetedHGBClassifier(class_weight=class_weight, **common)
    else:
        learner = BudgetedHGBRegressor(**common)
    return with_preprocessing(preprocessor, learner)
