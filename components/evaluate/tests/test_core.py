import numpy as np
import pytest

from components.evaluate.core import confusion_figure, roc_figure, roc_points, score


def test_perfect_and_inverted_scores():
    labels = np.array([0, 0, 1, 1])
    perfect = score(labels, np.array([0.1, 0.2, 0.8, 0.9]))
    assert perfect["roc_auc"] == 1.0
    assert perfect["accuracy"] == 1.0
    assert perfect["f1"] == 1.0
    assert perfect["log_loss"] < 0.3
    inverted = score(labels, np.array([0.9, 0.8, 0.2, 0.1]))
    assert inverted["roc_auc"] == 0.0
    assert inverted["accuracy"] == 0.0


def test_roc_points_are_thinned_and_finite():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 1000)
    fpr, tpr, thresholds = roc_points(labels, rng.random(1000))
    assert len(fpr) == len(tpr) == len(thresholds) <= 50
    assert fpr[0] == 0.0
    assert fpr[-1] == 1.0
    assert tpr[-1] == 1.0
    assert np.isfinite(thresholds).all()


@pytest.mark.parametrize("draw", [roc_figure, confusion_figure])
def test_figures_draw_titled_axes(draw):
    figure = draw(np.array([0, 1, 1, 0]), np.array([0.2, 0.7, 0.9, 0.6]), "demo")
    assert "demo" in figure.axes[0].get_title()
