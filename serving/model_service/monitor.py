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
from prometheus_client import Counter, Gauge, Histogram

from components.common.task import BINARY, REGRESSION, predicted_index
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
    "verified, unverified (unsigned or no public key, allowed here), failed (refused: never ready), "
    "pickle_refused (a pickle while MLFLOW_ALLOW_PICKLE_DESERIALIZATION is false: never ready) or "
    "loader_refused (a loader module neither plinth's nor allow-listed: never imported, never ready).",
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
# CBPE (serving/rollout/core/cbpe.py): the expected accuracy of calibrated answers is the mean probability of the
# answered label, i.e. this sum over the instances of `plinth_predicted_class_total`.
ANSWERED_CONFIDENCE = Counter(
    "plinth_answered_confidence",
    "Sum over answered instances of the predicted probability of the label answered (classifiers with probabilities).",
)
REJECTED_REQUESTS = Counter("plinth_rejected_requests", "Requests to /predict answered 4xx, by reason.", ["reason"])
MIRRORED_REQUESTS = Counter(
    "plinth_mirrored_requests",
    "Requests to /predict that were mirrored copies of live traffic (a shadow phase), by status class.",
    ["code"],
)
# Ground truth joined to stored predictions (`feedback_route.py`); `model_version` is the stored prediction's.
# Live quality is not computed here: `live_quality.py` reads it from the store (one component, every label).
FEEDBACK_RESULTS = (
    "accepted",
    "malformed",
    "unknown",
    "duplicate",
    "late",
    "store_unavailable",
    "unauthenticated",
    "rate_limited",
)
FEEDBACK = Counter(
    "plinth_feedback",
    "Feedback (ground-truth labels) received on /feedback, by result: accepted, or why it was refused.",
    ["model_name", "model_version", "result"],
)
# The same per labelling client (`clients.py`): `client` is one of the configured names, never anything sent.
FEEDBACK_BY_CLIENT = Counter(
    "plinth_feedback_by_client",
    "Feedback on /feedback from authenticated labelling clients, by client and result.",
    ["client", "result"],
)
# The prediction store (`store.py`, written in batches by `recorder.py`): what this process queued and wrote.
STORE_DROP_REASONS = ("buffer_full", "rejected", "request_cap")
STORE_OPERATIONS = ("write", "read")
STORE_WRITTEN = Counter(
    "plinth_prediction_store_written",
    "Predictions written to the prediction store (in batches, off the request path).",
    ["model_name", "model_version"],
)
STORE_DROPPED = Counter(
    "plinth_prediction_store_dropped",
    "Predictions answered but never stored: `reason` buffer_full (the store was down longer than the queue "
    "holds), rejected (the store refused the row) or request_cap (past PLINTH_LOG_ROWS_PER_REQUEST of one request).",
    ["model_name", "model_version", "reason"],
)
STORE_ERRORS = Counter(
    "plinth_prediction_store_errors",
    "Prediction-store operations that failed (`operation` write or read); the predictions were still answered.",
    ["model_name", "model_version", "operation"],
)
STORE_PENDING = Gauge(
    "plinth_prediction_store_pending",
    "Predictions queued in the serving processes, not yet written to the store.",
    ["model_name", "model_version"],
    multiprocess_mode="livesum",
)
STORE_PURGED = Counter(
    "plinth_prediction_store_purged",
    "Stored predictions (with their labels) deleted by this service's writers: older than PLINTH_FEEDBACK_MAX_AGE.",
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
        predicted = self._predicted(output)
        ANSWERED_CONFIDENCE.inc(float(output[np.arange(len(predicted)), predicted].sum()))
        counts = np.bincount(predicted, minlength=len(self.known))
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
        """Return each row's predicted class index, by the rule the answers use (the model's threshold)."""
        return predicted_index(output, self.task.kind, self.task.threshold)

    def _class(self, label: str) -> Counter:
        """Return the counter of a label: a known class, a new one while under the cap, else OTHER_CLASS."""
        counter = self.known.get(label)
        if counter is None:
            if self.task.classes or len(self.known) >= MAX_CLASS_LABELS:
                label = OTHER_CLASS
            counter = self.known.setdefault(label, PREDICTED_CLASS.labels(label))
        return counter
