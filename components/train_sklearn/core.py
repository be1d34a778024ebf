"""The scikit-learn candidate: a regularised linear model behind the shared preprocessing.

Logistic regression for classification (a strong, fast, calibrated baseline), ridge regression for a
regression task; standardised inputs, one-hot categories, imputed missing numbers.
"""

from __future__ import annotations

from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression, Ridge

from components.common.features import build_preprocessor, with_preprocessing
from components.common.profile import ReferenceProfile


def build_model(profile: ReferenceProfile, seed: int, c: float = 1.0) -> BaseEstimator:
    """Return the unfitted estimator for `profile`'s task; `c` is the inverse regularisation strength."""
    if profile.task.is_classification:
        learner: BaseEstimator = LogisticRegression(C=c, max_iter=5000, random_state=seed)
    else:
        learner = Ridge(alpha=1.0 / c)
    return with_preprocessing(build_preprocessor(profile), learner)
