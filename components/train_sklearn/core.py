"""The scikit-learn candidate: standardised logistic regression, a strong, fast, calibrated baseline."""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def build_model(seed: int, c: float = 1.0) -> Pipeline:
    """Return the unfitted estimator; `c` is the inverse regularisation strength."""
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("classify", LogisticRegression(C=c, max_iter=5000, random_state=seed)),
        ]
    )
