"""The naive baseline every first champion must beat: what a model that never looks at the features scores.

Classification: the prior, every row answered with the class shares of the validated table (what
scikit-learn's `DummyClassifier(strategy="prior")` answers once fitted on it: ROC AUC 0.5, the majority class's
accuracy). Regression: the mean of the target (`DummyRegressor(strategy="mean")`: R² about 0). Both come from
the reference profile, which every step already has, and are scored by the same `score` as the candidates, on
the same test rows: a candidate that cannot beat them has learned nothing a person could not write down.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from components.common.profile import ReferenceProfile
from components.evaluate.core import score

# How the gate's report names the baseline, per task family.
PRIOR, MEAN = "prior (class shares)", "mean of the target"


def baseline_name(profile: ReferenceProfile) -> str:
    """Return what the baseline answers, as the gate's report names it."""
    return PRIOR if profile.task.is_classification else MEAN


def baseline_output(profile: ReferenceProfile, rows: int) -> np.ndarray:
    """Return the baseline's output for `rows` rows: (rows, classes) prior probabilities, or (rows,) the mean.

    Raises:
        ValueError: the profile holds no class shares (classification) or no target profile (regression).
    """
    task = profile.task
    if task.is_classification:
        shares = np.array([profile.class_shares.get(name, 0.0) for name in task.class_names], dtype=np.float64)
        if shares.sum() <= 0:
            raise ValueError("the profile has no class shares to answer the prior with")
        return np.tile(shares / shares.sum(), (rows, 1))
    if profile.target_profile is None:
        raise ValueError("the profile of a regression has no target profile to answer the mean with")
    return np.full(rows, profile.target_profile.mean, dtype=np.float64)


def baseline_scores(profile: ReferenceProfile, truth: Any) -> dict[str, float]:
    """Return the baseline's metrics on the true targets of the test rows (the task's own metrics)."""
    return score(profile.task, truth, baseline_output(profile, len(truth)))
