"""Model-aware Prometheus metrics: which model serves, what it answers, and what it refused.

Metrics live at module level with small fixed label sets: classes come from the task (at most
MAX_CLASS_LABELS otherwise), features from the signature, reasons from REJECT_REASONS. The one exception is
the regression histogram, whose buckets come from the served model's reference target, so it is created
once per process when the service starts. The scrape configuration adds the `track` label (stable or
canary), so none is set here. Input metrics (drift, ranges, categories, missing values) are in `drift.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from prometheus_client import Counter, Gauge, Histogram, Summary

from components.common.task import BINARY, REGRESSION
from serving.model_service.predictor import ServedTask

PROBABILITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# Without reference target deciles, prediction values are counted on a symmetric 1-2-5 log scale.
_MAGNITUDES = [mantissa * 10.0**exponent for exponent in range(-2, 7) for mantissa in (1, 2, 5)]
GENERIC_VALUE_BUCKETS = (*(-value for value in reversed(_MAGNITUDES)), 0.0, *_MAGNITUDES)
# Distinct `class` label values of a classifier whose classes are unknown; later ones count as OTHER_CLASS.
MAX_CLASS_LABELS = 50
OTHER_CLASS = "other"
REJECT_REASONS = (
    "content_type",
    "body_too_large",
    "invalid_json",
    "invalid_value",
    "missing_feature",
    "unknown_feature",
    "batch_size",
    "invalid_shape",
    "overloaded",
)

MODEL_INFO = Gauge(
    "plinth_model_info",
    "Always 1; labels name the served model version, its task and whether input drift is scored (on/off).",
    ["model_name", "model_version", "task", "drift"],
    multiprocess_mode="max",
)
MODEL_VERIFICATION = Gauge(
    "plinth_model_verification",
    "Always 1; `result` says how the version's files fared against their signature before anything was loaded: "
    "verified, unverified (unsigned or no public key, allowed here), failed (refused: never ready) or "
    "pickle_refused (a pickle while MLFLOW_ALLOW_PICKLE_DESERIALIZATION is false: never ready).",
    ["model_name", "model_version", "result"],
    multiprocess_mode="max",
)
PREDICTION_PROBABILITY = Histogram(
    "plinth_prediction_probability",
    "Predicted class probability per instance: binary, the positive class only; multiclass, every class.",
    ["class"],
    buckets=PROBABILITY_BUCKETS,
)
PREDICTED_CLASS = Counter("plinth_predicted_class", "Instances predicted per class.", ["class"])
REJECTED_REQUESTS = Counter("plinth_rejected_requests", "Requests to /predict answered 4xx, by reason.", ["reason"])
MIRRORED_REQUESTS = Counter(
    "plinth_mirrored_requests",
    "Requests to /predict that were mirrored copies of live traffic (a shadow phase), by status class.",
    ["code"],
)
# Ground truth joined to logged predictions (`feedback.py`); `model_version` is the logged prediction's.
FEEDBACK_RESULTS = ("accepted", "malformed", "unknown", "duplicate", "late", "misdirected")
FEEDBACK = Counter(
    "plinth_feedback",
    "Feedback (ground-truth labels) received on /feedback, by result: accepted, or why it was refused.",
    ["model_name", "model_version", "result"],
)
LIVE_CORRECT = Summary(
    "plinth_live_correct",
    "1 per labelled classification prediction that was right, 0 per wrong one: accuracy = _sum / _count.",
    ["model_name", "model_version"],
)
LIVE_LOG_LOSS = Summary(
    "plinth_live_log_loss",
    "Log loss per labelled prediction of a classifier with probabilities (clipped at 1e-15): mean = _sum / _count.",
    ["model_name", "model_version"],
)
LIVE_ABSOLUTE_ERROR = Summary(
    "plinth_live_absolute_error",
    "Absolute error per labelled regression prediction: MAE = _sum / _count.",
    ["model_name", "model_version"],
)
PREDICTION_LOG_ROWS = Gauge(
    "plinth_prediction_log_rows",
    "Predictions held in the on-disk prediction log, awaiting or holding their label.",
    ["model_name", "model_version"],
    multiprocess_mode="livemax",
)
PREDICTION_LOG_EVICTED = Counter(
    "plinth_prediction_log_evicted",
    "Logged predictions dropped before any label came: `reason` rows (the log was full) or age (too old to label).",
    ["model_name", "model_version", "reason"],
)
PREDICTION_LOG_ERRORS = Counter(
    "plinth_prediction_log_errors",
    "Prediction-log reads or writes that failed (disk full, I/O error); the predictions were still answered.",
    ["model_name", "model_version"],
)
_VALUE_HISTOGRAM: list[Histogram] = []


def prediction_value_histogram(buckets: Sequence[float]) -> Histogram:
    """Return the process's `plinth_prediction_value` histogram, created with `buckets` on first call."""
    if not _VALUE_HISTOGRAM:
        _VALUE_HISTOGRAM.append(
            Histogram("plinth_prediction_value", "Predicted value per instance (regression).", buckets=buckets)
        )
    return _VALUE_HISTOGRAM[0]


def value_buckets(edges: Sequence[float] | None) -> tuple[float, ...]:
    """Return the reference target's quantile edges as buckets, or the generic scale without them."""
    unique = sorted(set(float(edge) for edge in edges or ()))
    return tuple(unique) if unique else GENERIC_VALUE_BUCKETS


class OutputMonitor:
    """Counts predicted classes and observes probabilities or values, per the served task."""

    def __init__(self, task: ServedTask, target_edges: Sequence[float] | None = None) -> None:
        self.task = task
        self.known = {name: PREDICTED_CLASS.labels(name) for name in task.class_names}
        self.values = prediction_value_histogram(value_buckets(target_edges)) if task.kind == REGRESSION else None
        self.probabilities = []
        if task.probabilities:
            observed = task.class_names[1:] if task.kind == BINARY else task.class_names
            self.probabilities = [PREDICTION_PROBABILITY.labels(name) for name in observed]

    def observe(self, output: np.ndarray) -> None:
        """Record one scored batch: probabilities (n, classes), values (n,) or labels (n,)."""
        if self.values is not None:
            for value in output.tolist():
                self.values.observe(value)
            return
        if not self.task.probabilities:
            for label, count in zip(*np.unique(output.astype(str), return_counts=True), strict=True):
                self._class(str(label)).inc(int(count))
            return
        counts = np.bincount(self._predicted(output), minlength=len(self.known))
        for counter, count in zip(self.known.values(), counts.tolist(), strict=True):
            if count:
                counter.inc(count)
        if len(self.probabilities) == 1:
            histogram = self.probabilities[0]
            for value in output[:, 1].tolist():
                histogram.observe(value)
        else:
            for row in output.tolist():
                for histogram, value in zip(self.probabilities, row, strict=True):
                    histogram.observe(value)

    def _predicted(self, output: np.ndarray) -> np.ndarray:
        """Return each row's predicted class index (binary: the positive class from 0.5 on, as answered)."""
        if self.task.kind == BINARY:
            return (output[:, 1] >= 0.5).astype(np.int64)
        return output.argmax(axis=1)

    def _class(self, label: str) -> Counter:
        """Return the counter of a label: a known class, a new one while under the cap, else OTHER_CLASS."""
        counter = self.known.get(label)
        if counter is None:
            if self.task.classes or len(self.known) >= MAX_CLASS_LABELS:
                label = OTHER_CLASS
            counter = self.known.setdefault(label, PREDICTED_CLASS.labels(label))
        return counter
