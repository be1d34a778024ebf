"""The plots evaluation logs to MLflow (under `plots/` of each candidate's run), one set per task.

Classification: ROC curves (one, or one-vs-rest per class) and the confusion matrix. Regression: residuals
against predictions, and predictions against the truth.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # steps run headless; select the backend before pyplot is imported

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from sklearn import metrics

from components.common.task import Task


def roc_figure(task: Task, classes: np.ndarray, probability: np.ndarray, title: str) -> Figure:
    """Plot the ROC curve of a binary model, or one-vs-rest curves per class of a multiclass one."""
    figure, axes = plt.subplots(figsize=(4.5, 4.5))
    columns = [1] if task.kind == "binary" else range(len(task.classes))
    for column in columns:
        truth = classes == column
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = metrics.roc_curve(truth, probability[:, column])
        auc = metrics.roc_auc_score(truth, probability[:, column])
        label = f"AUC = {auc:.4f}" if task.kind == "binary" else f"{task.class_names[column]}: AUC = {auc:.4f}"
        axes.plot(fpr, tpr, label=label)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC: {title}")
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    return figure


def confusion_figure(task: Task, classes: np.ndarray, predicted: np.ndarray, title: str) -> Figure:
    """Plot the confusion matrix with the class labels on both axes."""
    figure, axes = plt.subplots(figsize=(4.5, 4.5))
    matrix = metrics.confusion_matrix(classes, predicted, labels=range(len(task.classes)))
    metrics.ConfusionMatrixDisplay(matrix, display_labels=task.class_names).plot(ax=axes, colorbar=False)
    axes.set_title(f"Confusion matrix: {title}")
    figure.tight_layout()
    return figure


def residual_figure(truth: np.ndarray, predicted: np.ndarray, title: str) -> Figure:
    """Plot residuals (truth - prediction) against predictions, and predictions against the truth."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 4.5))
    left.scatter(predicted, truth - predicted, s=8, alpha=0.6)
    left.axhline(0.0, linestyle="--", color="grey")
    left.set(xlabel="prediction", ylabel="residual (truth - prediction)", title=f"Residuals: {title}")
    right.scatter(truth, predicted, s=8, alpha=0.6)
    low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    right.plot([low, high], [low, high], linestyle="--", color="grey")
    right.set(xlabel="truth", ylabel="prediction", title="Prediction vs truth")
    figure.tight_layout()
    return figure
