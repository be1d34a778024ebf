"""Evaluate: the same metrics and plots for every candidate (and the champion), on the same held-out rows.

The task decides which: classification reports ROC AUC (one-vs-rest macro for multiclass), log loss,
accuracy and macro F1 (binary adds F1 of the positive class), and the top-label calibration error (`ece`),
with ROC and confusion-matrix plots; regression reports RMSE, MAE and R², with a residual plot.

Labels follow the model's own decision (`plinth.decision`: the binary threshold chosen on validation rows,
`common/decision.py`) by the rule serving answers with (`task.predicted_index`), so accuracy, F1 and the
confusion matrix count what users are told. The candidate's decision goes on to the gate and the registry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib import pyplot as plt
from sklearn import metrics

from components.common.decision import expected_calibration_error
from components.common.modeling import predict_output
from components.common.task import BINARY, Task, encode_labels, predicted_index
from components.evaluate.plots import confusion_figure, residual_figure, roc_figure

CURVE_POINTS = 50
PROBABILITY_FLOOR = 1e-7


def predicted_classes(task: Task, probability: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Return the predicted class index per row as the service answers (binary: from the model's threshold on)."""
    return predicted_index(probability, task.kind, threshold)


def classification_scores(
    task: Task, classes: np.ndarray, probability: np.ndarray, threshold: float | None = None
) -> dict[str, float]:
    """Return the classification metrics for class indices and (n, classes) probabilities."""
    predicted = predicted_classes(task, probability, threshold)
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
        "ece": expected_calibration_error(probability, classes),
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


def score(task: Task, truth: Any, output: np.ndarray, threshold: float | None = None) -> dict[str, float]:
    """Return the task's metrics for the true targets and the model's output (probabilities or values)."""
    if task.is_classification:
        return classification_scores(task, encode_labels(task, truth), output, threshold)
    return regression_scores(np.asarray(truth, dtype=float), output)


def evaluate_model(
    model: Any, task: Task, features: Any, truth: Any, threshold: float | None = None
) -> tuple[dict[str, float], np.ndarray]:
    """Score a fitted model labelling by `threshold` (its own, `decision.threshold_of`); return metrics and output."""
    output = predict_output(model, task, features)
    return score(task, truth, output, threshold), output


def roc_points(classes: np.ndarray, positive: np.ndarray) -> tuple[list[float], list[float], list[float]]:
    """Return a binary ROC curve (fpr, tpr, thresholds) thinned to at most CURVE_POINTS, for KFP's viewer."""
    fpr, tpr, thresholds = metrics.roc_curve(classes, positive)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), CURVE_POINTS)).astype(int))
    finite = np.where(np.isfinite(thresholds), thresholds, 1.0)
    return fpr[keep].tolist(), tpr[keep].tolist(), finite[keep].tolist()


def run(model_path: str, test_path: str, tracking_uri: str, candidate_json: str) -> dict[str, Any]:
    """Step entry: score one candidate on the test split, log metrics and plots to its MLflow run.

    Returns the candidate with its task, metrics and decision (`plinth.decision`, or None: the gate's input),
    and for classification the ROC (binary only) and confusion-matrix data for KFP's viewer.
    """
    import json
    from pathlib import Path

    import pandas as pd
    from mlflow.models import Model

    from components.common import modeling, tracking
    from components.common.decision import decision_of
    from components.common.features import split_target

    candidate = json.loads(candidate_json)
    profile = modeling.load_profile(model_path)
    task = profile.task
    decision = decision_of(Model.load(str(Path(model_path) / "MLmodel")).metadata)
    threshold = decision.threshold if decision is not None else None
    features, truth = split_target(pd.read_parquet(test_path), profile)
    scores, output = evaluate_model(modeling.load_model(model_path), task, features, truth, threshold)
    client = tracking.connect(tracking_uri)
    for key, value in scores.items():
        client.log_metric(candidate["run_id"], f"test_{key}", value)
    block = decision.metadata() if decision is not None else None
    result: dict[str, Any] = {"candidate": {**candidate, "task": task.kind, "metrics": scores, "decision": block}}
    if task.is_classification:
        classes = encode_labels(task, truth)
        predicted = predicted_classes(task, output, threshold)
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
