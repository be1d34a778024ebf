import numpy as np
import pytest

from components.common.task import BINARY, MULTICLASS, REGRESSION, Task
from components.evaluate.core import roc_points, score
from components.evaluate.plots import confusion_figure, residual_figure, roc_figure

BINARY_TASK = Task(BINARY, (0, 1))
THREE = Task(MULTICLASS, ("a", "b", "c"))


def test_perfect_and_inverted_binary_scores():
    labels = np.array([0, 0, 1, 1])
    perfect = score(BINARY_TASK, labels, np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9]]))
    assert perfect["roc_auc"] == 1.0
    assert perfect["accuracy"] == 1.0
    assert perfect["f1"] == perfect["f1_macro"] == 1.0
    assert perfect["log_loss"] < 0.3
    inverted = score(BINARY_TASK, labels, np.array([[0.1, 0.9], [0.2, 0.8], [0.8, 0.2], [0.9, 0.1]]))
    assert inverted["roc_auc"] == 0.0
    assert inverted["accuracy"] == 0.0


def test_multiclass_scores_use_one_vs_rest_and_the_labels():
    truth = np.array(["a", "b", "c", "a", "b", "c"])
    confident = np.eye(3)[[0, 1, 2, 0, 1, 2]] * 0.9 + 0.1 / 3
    scores = score(THREE, truth, confident)
    assert scores["roc_auc"] == 1.0
    assert scores["accuracy"] == 1.0
    assert set(scores) == {"roc_auc", "log_loss", "accuracy", "f1_macro", "ece"}
    assert scores["ece"] == pytest.approx(1.0 - (0.9 + 0.1 / 3))  # always right, 93 % sure
    shuffled = score(THREE, truth[::-1], confident)
    assert shuffled["accuracy"] < 1.0
    assert shuffled["log_loss"] > scores["log_loss"]


def test_regression_scores():
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    assert score(Task(REGRESSION), truth, truth) == {"rmse": 0.0, "mae": 0.0, "r2": 1.0}
    off = score(Task(REGRESSION), truth, truth + 1.0)
    assert off["rmse"] == pytest.approx(1.0)
    assert off["mae"] == pytest.approx(1.0)
    assert off["r2"] < 1.0


def test_roc_points_are_thinned_and_finite():
    rng = np.random.default_rng(0)
    fpr, tpr, thresholds = roc_points(rng.integers(0, 2, 1000), rng.random(1000))
    assert len(fpr) == len(tpr) == len(thresholds) <= 50
    assert (fpr[0], fpr[-1], tpr[-1]) == (0.0, 1.0, 1.0)
    assert np.isfinite(thresholds).all()


def test_figures_draw_titled_axes_per_task():
    classes = np.array([0, 1, 2, 0, 1, 2])
    probability = np.eye(3)[[0, 1, 2, 1, 1, 2]] * 0.7 + 0.1
    assert "demo" in roc_figure(THREE, classes, probability, "demo").axes[0].get_title()
    assert len(roc_figure(THREE, classes, probability, "demo").axes[0].get_lines()) == 4
    assert "demo" in confusion_figure(THREE, classes, probability.argmax(1), "demo").axes[0].get_title()
    assert "demo" in residual_figure(np.arange(5.0), np.arange(5.0) + 0.5, "demo").axes[0].get_title()
