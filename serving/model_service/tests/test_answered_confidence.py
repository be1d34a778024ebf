"""CBPE's input: the service sums the probability of each label it answers, by the label rule it answers with."""

import numpy as np
import pytest
from prometheus_client import REGISTRY

from components.common.task import Task
from serving.model_service.monitor import OutputMonitor
from serving.model_service.predictor import ServedTask

OUTPUT = np.array([[0.2, 0.8], [0.6, 0.4], [0.75, 0.25]])


def confidence() -> float:
    return REGISTRY.get_sample_value("plinth_answered_confidence_total") or 0.0


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (None, 0.8 + 0.6 + 0.75),  # 0.5: answers yes, no, no
        (0.3, 0.8 + 0.4 + 0.75),  # the model's own threshold: yes, yes, no
    ],
)
def test_the_answered_labels_probabilities_are_summed(threshold: float | None, expected: float) -> None:
    monitor = OutputMonitor(ServedTask.of(Task("binary", ("no", "yes")), threshold))
    before = confidence()
    monitor.observe(OUTPUT)
    assert confidence() - before == pytest.approx(expected)


def test_multiclass_sums_the_most_probable_class_and_a_regressor_nothing() -> None:
    before = confidence()
    OutputMonitor(ServedTask.of(Task("multiclass", ("a", "b", "c")))).observe(
        np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    )
    assert confidence() - before == pytest.approx(0.7 + 0.5)
    OutputMonitor(ServedTask("regression")).observe(np.array([1.5, 2.5]))
    assert confidence() - before == pytest.approx(0.7 + 0.5)
