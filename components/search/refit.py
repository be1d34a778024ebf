"""Refit on training + validation rows (AutoGluon's `refit_full`): the winner's settings, fitted on more rows.

The search picks a family's parameters on the validation rows, and the decision step
(`components/common/decision.py`) chooses the threshold and calibration on them, from a model fitted on the
training rows alone: 64 % of the table at the default sizes (80 % train, a fifth of it validation). That fit
leaves a fifth of the rows it could learn from unused. With `refit_full` (the default) the training step fits
the same parameters once more on training + validation rows and saves that model, with the decision chosen
before (`decision.carried`); `--no-refit` keeps the 64 % fit. On hpc_data (4 classes, 6 % the smallest)
HistGradientBoosting with defaults fitted on every training row scored 0.825 macro-F1, above plinth's 64 % fits
(`pipelines/bench-quality-results.md`).

Early-stopping learners stop on rows held out of their own fit (HistGradientBoosting's validation fraction,
the MLP's held-out slice); a refit on rows it also stops on would be no stop at all. So the refit takes the
rounds or passes the first fit ended with and fixes them (`fixed_rounds`), with no early stopping. XGBoost's
rounds are a searched parameter already; when the time budget cut its first fit short, the refit takes the
rounds it had. The linear model needs no count: its solver converges.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline


def learner_of(model: Any) -> Any:
    """Return a candidate's learner: the last step of its pipeline, or the model itself."""
    return model.steps[-1][1] if isinstance(model, Pipeline) else model


def fixed_rounds(fitted: Any) -> dict[str, Any]:
    """Return the learner parameters that make a refit take the rounds `fitted` ended with, without stopping early.

    Read off the fitted learner before it is prepared for saving. Empty for a learner with no round count.
    """
    learner = learner_of(fitted)
    if hasattr(learner, "best_epoch_"):  # the MLP: the pass it kept, every row fitted (no held-out slice)
        passes = max(1, int(learner.best_epoch_))
        return {"epochs": passes, "patience": passes, "validation_fraction": 0.0}
    if "early_stopping" in learner.get_params() and hasattr(learner, "n_iter_"):  # HistGradientBoosting
        return {"max_iter": max(1, int(learner.n_iter_)), "early_stopping": False}
    booster = getattr(learner, "estimator_", learner)
    if hasattr(booster, "get_booster"):  # XGBoost, alone or inside the label encoder
        prefix = "estimator__" if booster is not learner else ""
        return {f"{prefix}n_estimators": int(booster.get_booster().num_boosted_rounds())}
    return {}


def refit(
    unfitted: Any, rounds: Mapping[str, Any], train: tuple[pd.DataFrame, pd.Series], validation: tuple[Any, Any]
) -> tuple[Any, pd.DataFrame]:
    """Fit `unfitted` (the winner's settings, built afresh) with `rounds` on training + validation rows.

    Returns:
        The fitted model, and the rows it was fitted on (their count is recorded; the saved signature is
        inferred from them).
    """
    learner_of(unfitted).set_params(**rounds)
    features = pd.concat([train[0], validation[0]], ignore_index=True)
    labels = pd.concat([train[1], validation[1]], ignore_index=True)
    return unfitted.fit(features, labels), features
