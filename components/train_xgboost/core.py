"""The XGBoost candidate: histogram gradient boosting, on the GPU when one is visible."""

from __future__ import annotations

from typing import Any

from xgboost import XGBClassifier


def build_model(seed: int, device: str, n_estimators: int = 200, max_depth: int = 4) -> XGBClassifier:
    """Return the unfitted estimator for `device` ("cuda" or "cpu")."""
    return XGBClassifier(
        n_estimators=n_estimators,
        max_depth=max_depth,
        learning_rate=0.1,
        tree_method="hist",
        device=device,
        random_state=seed,
        n_jobs=2,
        eval_metric="logloss",
    )


def for_cpu_inference(model: XGBClassifier) -> XGBClassifier:
    """Pin a fitted model to CPU prediction: serving pods have no GPU, and a CUDA model would warn per call."""
    params: dict[str, Any] = {"device": "cpu"}
    model.set_params(**params)
    return model
