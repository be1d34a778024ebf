"""Search spaces: per candidate family, the hyper-parameters a trial draws, as `build_model` keywords.

A space is a function of an Optuna trial and the validated profile, so it can depend on the task:
classification spaces also choose class weights ("balanced", inversely proportional to class frequency, or
none), which is how the search handles an imbalanced table. The names a space suggests are exactly the
keyword parameters of the family's `build_model`, whose defaults are the fixed settings (`search_trials=0`)
and the first trial of every search, so a search never ends below the fixed settings on the validation rows.

Ranges are the usual ones (log scales for rates and penalties) and kept narrow enough that 10-20 TPE trials
find a good region on a small table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from components.common.profile import ReferenceProfile

Space = Callable[[optuna.Trial, ReferenceProfile], dict[str, Any]]
# The class-weight choices of a classification space: None fits every row alike.
CLASS_WEIGHTS = (None, "balanced")


def class_weight(trial: optuna.Trial, profile: ReferenceProfile) -> dict[str, Any]:
    """Return the class-weight choice for a classification task, nothing for a regression."""
    if not profile.task.is_classification:
        return {}
    return {"class_weight": trial.suggest_categorical("class_weight", CLASS_WEIGHTS)}


def sklearn_space(trial: optuna.Trial, profile: ReferenceProfile) -> dict[str, Any]:
    """Logistic or ridge regression: the inverse regularisation strength, and class weights."""
    return {"c": trial.suggest_float("c", 1e-3, 1e2, log=True), **class_weight(trial, profile)}


def xgboost_space(trial: optuna.Trial, profile: ReferenceProfile) -> dict[str, Any]:
    """XGBoost: rounds, depth, learning rate, child weight, row and column subsampling, L2; class weights."""
    return {
        "n_estimators": trial.suggest_int("n_estimators", 50, 400, log=True),
        "max_depth": trial.suggest_int("max_depth", 2, 8),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-2, 10.0, log=True),
        **class_weight(trial, profile),
    }


def torch_space(trial: optuna.Trial, profile: ReferenceProfile) -> dict[str, Any]:
    """The MLP: width, Adam's learning rate, weight decay; a class-weighted loss for classification."""
    return {
        "hidden": trial.suggest_int("hidden", 16, 128, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 3e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        **class_weight(trial, profile),
    }


def hgb_space(trial: optuna.Trial, profile: ReferenceProfile) -> dict[str, Any]:
    """HistGradientBoosting: learning rate, leaves, leaf size, L2 (from 0, its default); no class weights.

    Rounds are not searched: early stopping on the learner's own validation fraction picks them. Class weights
    are not searched for this family: with any sample weight scikit-learn bins every feature by weighted
    percentiles, one sort per bin edge, which cost 2 s per fit of the 30-column built-in table against 0.07 s
    unweighted (measured on 364 rows) and took the search's whole time budget. An imbalanced binary task still
    gets its tuned decision threshold (`components/common/decision.py`), and `build_model` still takes
    `class_weight` for a user who wants it.
    """
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 7, 63, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 5, 100, log=True),
        "l2_regularization": trial.suggest_float("l2_regularization", 0.0, 5.0),
    }


# The search space of each candidate, by the candidate's name (the `plinth.candidate` tag).
SPACES: dict[str, Space] = {
    "sklearn": sklearn_space,
    "xgboost": xgboost_space,
    "torch": torch_space,
    "hgb": hgb_space,
}
