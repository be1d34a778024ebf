"""Evaluate: the same metrics and plots for every candidate (and the champion), on the same held-out rows."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # steps run headless; select the backend before pyplot is imported

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from sklearn import metrics

from components.common.modeling import Classifier

PRIMARY_METRIC = "roc_auc"
CURVE_POINTS = 50


def score(labels: np.ndarray, positive_probability: np.ndarray) -> dict[str, float]:
    """Return ROC AUC, accuracy, F1 and log loss for binary labels (0/1) and P(class 1)."""
    predicted = (positive_probability >= 0.5).astype(int)
    return {
        "roc_auc": float(metrics.roc_auc_score(labels, positive_probability)),
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "f1": float(metrics.f1_score(labels, predicted)),
        "log_loss": float(metrics.log_loss(labels, np.clip(positive_probability, 1e-7, 1 - 1e-7))),
    }


def evaluate_model(model: Classifier, features: Any, labels: Any) -> tuple[dict[str, float], np.ndarray]:
    """Score a fitted model; return its metrics and its P(class 1) per row."""
    probability = model.predict_proba(features)[:, 1]
    return score(np.asarray(labels), probability), probability


def roc_points(labels: np.ndarray, probability: np.ndarray) -> tuple[list[float], list[float], list[float]]:
    """Return (fpr, tpr, thresholds) thinned to at most CURVE_POINTS, for the KFP ROC visualisation."""
    fpr, tpr, thresholds = metrics.roc_curve(labels, probability)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), CURVE_POINTS)).astype(int))
    finite = np.where(np.isfinite(thresholds), thresholds, 1.0)
    return fpr[keep].tolist(), tpr[keep].tolist(), finite[keep].tolist()


def roc_figure(labels: np.ndarray, probability: np.ndarray, title: str) -> Figure:
    """Plot the ROC curve with its AUC."""
    fpr, tpr, _ = metrics.roc_curve(labels, probability)
    figure, axes = plt.subplots(figsize=(4.5, 4.5))
    axes.plot(fpr, tpr, label=f"AUC = {metrics.roc_auc_score(labels, probability):.4f}")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC: {title}")
    axes.legend(loc="lower right")
    figure.tight_layout()
    return figure


def confusion_figure(labels: np.ndarray, probability: np.ndarray, title: str) -> Figure:
    """Plot the confusion matrix at threshold 0.5."""
    figure, axes = plt.subplots(figsize=(4.5, 4.5))
    metrics.ConfusionMatrixDisplay.from_predictions(labels, (probability >= 0.5).astype(int), ax=axes, colorbar=False)
    axes.set_title(f"Confusion matrix: {title}")
    figure.tight_layout()
    return figure


def run(model_path: str, test_path: str, target: str, tracking_uri: str, candidate_json: str) -> dict[str, Any]:
    """Step entry: score one candidate on the test split, log metrics and plots to its MLflow run.

    Returns the candidate with its metrics (the gate's input) and the ROC/confusion data for KFP's UI.
    """
    import json

    import pandas as pd

    from components.common import modeling, tracking

    candidate = json.loads(candidate_json)
    features, labels = modeling.split_features(pd.read_parquet(test_path), target)
    scores, probability = evaluate_model(modeling.load_model(model_path), features, labels)
    truth = np.asarray(labels)
    client = tracking.connect(tracking_uri)
    for key, value in scores.items():
        client.log_metric(candidate["run_id"], f"test_{key}", value)
    for figure, name in ((roc_figure, "roc_curve.png"), (confusion_figure, "confusion_matrix.png")):
        drawn = figure(truth, probability, candidate["name"])
        client.log_figure(candidate["run_id"], drawn, f"plots/{name}")
        plt.close(drawn)
    print(f"evaluate {candidate['name']}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    predicted = (probability >= 0.5).astype(int)
    return {
        "candidate": {**candidate, "metrics": scores},
        "roc": roc_points(truth, probability),
        "confusion": metrics.confusion_matrix(truth, predicted, labels=[0, 1]).tolist(),
    }
