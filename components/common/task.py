"""The task contract: what kind of problem a model solves, decided once and asked by every layer.

A task is binary classification, multiclass classification (with its class labels, in the order of the
model's probability columns) or regression. Validation decides it from the target column (a `task`
pipeline parameter can override that), the profile and the MLmodel metadata carry it, the registry tags
the version with it, and training, evaluation, the gate, serving, metrics and the rollout analysis read it
from here instead of assuming "two classes". Keep this module free of heavy imports: serving imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"
KINDS = (BINARY, MULTICLASS, REGRESSION)
AUTO = "auto"
CLASSIFICATION = "classification"  # accepted as an override: binary or multiclass, by the number of classes
OVERRIDES = (AUTO, CLASSIFICATION, *KINDS)
# A target with more distinct values than this is not read as classes unless the task says so.
MAX_AUTO_CLASSES = 20
TAG_TASK = "plinth.task"

# Metrics every task reports, and the direction in which each is better.
CLASSIFICATION_METRICS = ("roc_auc", "log_loss", "accuracy", "f1_macro")
BINARY_METRICS = (*CLASSIFICATION_METRICS, "f1")
REGRESSION_METRICS = ("rmse", "mae", "r2")
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
# A binary label is the positive class from this P(positive) on, unless the model stores its own threshold.
DEFAULT_THRESHOLD = 0.5
DEFAULT_PRIMARY = {BINARY: "roc_auc", MULTICLASS: "roc_auc", REGRESSION: "r2"}

Label = str | int | float | bool


class TaskError(ValueError):
    """The task cannot be decided or does not fit the data; the message says how to choose."""


def plain_label(value: Any) -> Label:
    """Return a class label as a JSON scalar (numpy integers and booleans become Python ones)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return int(value) if float(value).is_integer() else float(value)
    return str(value)


@dataclass(frozen=True)
class Task:
    """One problem kind, with the class labels of a classifier in probability-column order."""

    kind: str
    classes: tuple[Label, ...] = ()

    def __post_init__(self) -> None:
        """Reject a task whose classes do not fit its kind."""
        if self.kind not in KINDS:
            raise TaskError(f"task must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == REGRESSION and self.classes:
            raise TaskError("a regression task has no classes")
        if self.kind == BINARY and len(self.classes) != 2:
            raise TaskError(f"a binary task has exactly 2 classes, got {len(self.classes)}")
        if self.kind == MULTICLASS and len(self.classes) < 3:
            raise TaskError(f"a multiclass task has at least 3 classes, got {len(self.classes)}")

    @property
    def is_classification(self) -> bool:
        """Return True for binary and multiclass tasks."""
        return self.kind != REGRESSION

    @property
    def class_names(self) -> list[str]:
        """Return the class labels as strings (metric label values, JSON object keys)."""
        return [str(label) for label in self.classes]

    @property
    def positive_class(self) -> Label:
        """Return the class whose probability a binary model reports as `probability`."""
        if self.kind != BINARY:
            raise TaskError(f"a {self.kind} task has no positive class")
        return self.classes[1]

    @property
    def metrics(self) -> tuple[str, ...]:
        """Return the names of the metrics evaluation reports for this task."""
        if self.kind == BINARY:
            return BINARY_METRICS
        return CLASSIFICATION_METRICS if self.is_classification else REGRESSION_METRICS

    @property
    def default_primary_metric(self) -> str:
        """Return the metric that picks the winner and is compared with the champion by default."""
        return DEFAULT_PRIMARY[self.kind]

    def primary_metric(self, configured: str = "") -> str:
        """Return `configured` when it is one of this task's metrics, the default when it is empty."""
        if not configured:
            return self.default_primary_metric
        if configured not in self.metrics:
            choices = ", ".join(self.metrics)
            raise TaskError(f"primary_metric '{configured}' does not apply to a {self.kind} task; use one of {choices}")
        return configured

    def describe(self) -> str:
        """Return the task in a few words, for logs and summaries."""
        if not self.is_classification:
            return REGRESSION
        return f"{self.kind} classification, classes {', '.join(self.class_names)}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON/YAML-serialisable form."""
        return {"kind": self.kind, "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Task:
        """Rebuild a task written by `to_dict`."""
        return cls(str(data["kind"]), tuple(plain_label(label) for label in data.get("classes") or ()))

    def tag(self) -> str:
        """Return the registry tag value (`plinth.task`): the kind, which is what filters and readers need."""
        return self.kind


def greater_is_better(metric: str) -> bool:
    """Return whether a higher value of `metric` is better."""
    return metric not in LOWER_IS_BETTER


def classification_task(labels: Sequence[Any]) -> Task:
    """Return the binary or multiclass task of these distinct labels (sorted: the models' column order)."""
    classes = tuple(plain_label(label) for label in sorted(labels, key=_sort_key))
    if len(classes) < 2:
        raise TaskError(f"classification needs at least 2 classes, the target has {len(classes)}")
    return Task(BINARY if len(classes) == 2 else MULTICLASS, classes)


def _sort_key(value: Any) -> tuple[int, Any]:
    """Sort numbers numerically and everything else as text, numbers first (as numpy.unique would)."""
    if isinstance(value, bool | np.bool_):
        return (0, int(value))
    if isinstance(value, int | float | np.integer | np.floating):
        return (0, float(value))
    return (1, str(value))


def infer_task(target: pd.Series, override: str = AUTO) -> Task:
    """Decide the task from the target column, or apply the `task` pipeline parameter.

    Text, boolean and categorical targets are classes. Integer targets with at most MAX_AUTO_CLASSES
    distinct values are classes, with more they are a regression. Float targets with many distinct
    values are a regression; a float target with few distinct values is ambiguous and needs the parameter.

    Raises:
        TaskError: the override is unknown, does not fit the target, or the target is ambiguous.
    """
    if override not in OVERRIDES:
        raise TaskError(f"task must be one of {', '.join(OVERRIDES)}, got {override!r}")
    values = target.dropna()
    distinct = values.unique()
    name = target.name
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if override == REGRESSION:
        if not numeric:
            raise TaskError(f"task=regression needs a numeric target; {name!r} holds {values.dtype} values")
        return Task(REGRESSION)
    if override in (CLASSIFICATION, BINARY, MULTICLASS):
        task = classification_task(distinct)
        if override != CLASSIFICATION and task.kind != override:
            raise TaskError(f"task={override} does not fit target {name!r}: it has {len(distinct)} classes")
        return task
    if not numeric:
        return classification_task(distinct)
    if pd.api.types.is_integer_dtype(values):
        return classification_task(distinct) if len(distinct) <= MAX_AUTO_CLASSES else Task(REGRESSION)
    if len(distinct) <= MAX_AUTO_CLASSES:
        shown = ", ".join(f"{float(v):g}" for v in sorted(distinct)[:6])
        raise TaskError(
            f"target {name!r} is a float column with only {len(distinct)} distinct values ({shown}): "
            'set the task parameter to classification or regression (make train TRAIN_ARGS="--task classification")'
        )
    return Task(REGRESSION)


def encode_labels(task: Task, labels: pd.Series | np.ndarray) -> np.ndarray:
    """Return each label's class index (the probability column), for metrics and integer-only learners.

    Raises:
        TaskError: a label is not one of the task's classes.
    """
    index = {label: position for position, label in enumerate(task.classes)}
    plain = [plain_label(label) for label in np.asarray(labels, dtype=object)]
    unknown = sorted({str(label) for label in plain if label not in index})
    if unknown:
        raise TaskError(
            f"labels {', '.join(unknown[:5])} are not classes of this model ({', '.join(task.class_names)})"
        )
    return np.array([index[label] for label in plain], dtype=np.int64)


def predicted_index(output: np.ndarray, kind: str, threshold: float | None = None) -> np.ndarray:
    """Return each row's predicted class index from (n, classes) probabilities: the one rule for a label.

    Binary: the positive class (index 1) when its probability is at least `threshold` (the model's own, chosen
    on validation rows by `decision.py`; DEFAULT_THRESHOLD without one). Multiclass: the most probable class.
    Serving's answers, its predicted-class metric (hence the rollout's divergence), batch scoring and
    evaluation all label with this function, so they agree row for row.
    """
    if kind == BINARY:
        cut = DEFAULT_THRESHOLD if threshold is None else threshold
        return (output[:, 1] >= cut).astype(np.int64)
    return np.asarray(output.argmax(axis=1), dtype=np.int64)
