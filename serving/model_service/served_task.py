"""What a served version answers (task kind, classes, probabilities), and the check of an output against it.

Every door (/predict, /v2, /explain, /feedback, the prediction store, batch scoring) speaks of the served
task, not of how the model was loaded; so it lives apart from the predictors, which import it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.common.task import Label, Task
from serving.model_service.registry import ModelLoadError


@dataclass(frozen=True)
class ServedTask:
    """What the service answers: the task kind, the classes when known, and whether it has probabilities.

    `threshold`: a binary model's own decision threshold (`plinth.decision` in its MLmodel metadata), which
    every label of it applies (`task.predicted_index`); None keeps the 0.5 rule.
    """

    kind: str
    classes: tuple[Label, ...] = ()
    probabilities: bool = False
    threshold: float | None = None

    @classmethod
    def of(cls, task: Task, threshold: float | None = None) -> ServedTask:
        """Return how a plinth model of `task` is served (classifiers always answer probabilities)."""
        return cls(task.kind, task.classes, task.is_classification, threshold)

    @property
    def class_names(self) -> list[str]:
        """Return the known class labels as strings (metric labels, probability keys)."""
        return [str(label) for label in self.classes]


def check_output(task: ServedTask, output: np.ndarray, rows: int) -> None:
    """Refuse an output that does not fit the task (a warm-up that fails this never serves).

    Raises:
        ModelLoadError: wrong shape, non-finite numbers, or a non-numeric regression output.
    """
    if task.probabilities:
        expected: tuple[int, ...] = (rows, len(task.classes))
    else:
        expected = (rows,)
    if output.shape != expected:
        raise ModelLoadError(f"warm-up prediction returned shape {output.shape}, expected {expected}")
    if output.dtype != object and not np.all(np.isfinite(output)):
        raise ModelLoadError("warm-up prediction returned non-finite values")
