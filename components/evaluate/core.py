"""Evaluate: the same metrics and plots for every candidate (and the champion), on the same held-out rows.

The task decides which: classification reports ROC AUC (one-vs-rest macro for multiclass), log loss,
accuracy and macro F1 (binary adds F1 of the positive class), with ROC and confusion-matrix plots;
regression reports RMSE, MAE and R², with a residual plot.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib import pyplot as plt
from sklearn import metrics

from components.common.modeling import predict_output
from components.common.task import BINARY, Task, encode_labels
from components.evaluate.plots import confusion_figure, residual_figure, roc_figure

CURVE_POINTS = 50
PROBABILITY_FLOOR = 1e-7


def predicted_classes(task: Task, probability: np.ndarray) -> np.ndarray:
    """Return the predicted class index per row (binary: P(positive) >= 0.5, as the service answers)."""
    if task.kind == BINARY:
        return (probability[:, 1] >= 0.5).astype(int)
    return np.argmax(probability, axis=1)


def classification_scores(task: Task, classes: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """Return the classification metrics for class indices and (n, classes) probabilities."""
    predicted = predicted_classes(task, probability)
    labels = list(range(len(task.classes)))
    if task.kind == BINARY:
        roc_auc = metrics.roc_auc_score(classes, probability[:, 1])
    else:
        roc_auc = metrics.roc_auc_score(classes, probability, multi_class="ovr", average="macro", labels=labels)
    floored = np.clip(probability, PROBABILITY_FLOOR, 1.0)
    floored /= floored.sum(axis=1, keepdims=True)
    scores = {
        "roc_auc": float(roc_auc),
        "log_loss": float(metrics.log_loss(classes, floored, labels=labels)),
        "accuracy": float(metrics.accuracy_score(classes, predicted)),
        "f1_macro": float(metrics.f1_score(classes, predicted, labels=labels, average="macro", zero_division=0)),
    }
    if task.kind == BINARY:
        scores["f1"] = float(metrics.f1_score(classes, predicted, zero_division=0))
    return scores


def regression_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Return RMSE, MAE and R² of predicted values."""
    return {
        "rmse": float(np.sqrt(metrics.mean_squared_error(truth, predicted))),
        "mae": float(metrics.mean_absolute_error(truth, predicted)),
        "r2": float(metrics.r2_score(truth, predicted)),
    }


def score(task: Task, truth: Any, output: np.ndarray) -> dict[str, float]:
    """Return the task's metrics for the true targets and the model's output (probabilities or values)."""
    if task.is_classification:
        return classification_scores(task, encode_labels(task, truth), output)
    return regression_scores(np.asarray(truth, dtype=float), output)


def evaluate_model(model: Any, task: Task, features: Any, truth: Any) -> tuple[dict[str, float], np.ndarray]:
    """Score a fitted model; return its metrics and its output."""
    output = predict_output(model, task, features)
    return score(task, truth, output), output


def roc_points(classes: np.ndarray, positive: np.ndarray) -> tuple[list[float], list[float], list[float]]:
    """Return a binary ROC curve (fpr, tpr, thresholds) thinned to at most CURVE_POINTS, for KFP's viewer."""
    fpr, tpr, thresholds = metrics.roc_curve(classes, positive)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), CURVE_POINTS)).astype(int))
    finite = np.where(np.isfinite(thresholds), thresholds, 1.0)
    return fpr[keep].tolist(), tpr[keep].tolist(), finite[keep].tolist()


def run(model_path: str, test_path: str, tracking_uri: str, candidate_json: str) -> dict[str, Any]:
    """Step entry: score one candidate on the test split, log metrics and plots to its MLflow run.

    Returns the candidate with its task and metrics (the gate's input), and for classification the ROC
    (binary only) and confusion-matrix data for KFP's viewer.
    """
    import json

    import pandas as pd

    from components.common import modeling, tracking
    from components.common.features import split_target

    candidate = json.loads(candidate_json)
    profile = modeling.load_profile(model_path)
    task = profile.task
    features, truth = split_target(pd.read_parquet(test_path), profile)
    scores, output = evaluate_model(modeling.load_model(model_path), task, features, truth)
    client = tracking.connect(tracking_uri)
    for key, value in scores.items():
        client.log_metric(candidate["run_id"], f"test_{key}", value)
    result: dict[str, Any] = {"candidate": {**candidate, "task": task.kind, "metrics": scores}}
    if task.is_classification:
        classes = encode_labels(task, truth)
        predicted = predicted_classes(task, output)
        figures = {
            "roc_curve.png": roc_figure(task, classes, output, candidate["name"]),
            "confusion_matrix.png": confusion_figure(task, classes, predicted, candidate["name"]),
        }
        matrix = metrics.confusion_matrix(classes, predicted, labels=range(len(task.classes)))
        result["confusion"] = {"labels": task.class_names, "matrix": matrix.tolist()}
        result["roc"] = roc_points(classes, output[:, 1]) if task.kind == BINARY else None
    else:
        figures = {"residuals.png": residual_figure(np.asarray(truth, dtype=float), output, candidate["name"])}
    for name, figure in figures.items():
        client.log_figure(candidate["run_id"], figure, f"plots/{name}")
        plt.close(figure)
    print(f"evaluate {candidate['name']} ({task.kind}): " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    return result
