"""Model-aware Prometheus metrics: what the model sees and what it answers.

Metrics live at module level with small fixed label sets (features come from the model, classes are
0/1, reasons from `REJECT_REASONS`). The scrape configuration adds the `track` label (stable or
canary), so none is set here. Every update is O(rows x features) numpy work plus one histogram
observation per row; drift is tracked incrementally (bin counts of a ring buffer), so a PSI refresh costs
O(features x bins) and never rescans the window.
"""

from __future__ import annotations

import threading

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from components.common.profile import ReferenceProfile, psi

PROBABILITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# Rows a window must hold before its PSI is published: fewer rows give a noisy, alarming score.
DRIFT_MIN_ROWS = 50
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
    "Always 1; labels name the model version this process serves.",
    ["model_name", "model_version"],
    multiprocess_mode="max",
)
PREDICTION_PROBABILITY = Histogram(
    "plinth_prediction_probability",
    "Predicted probability of class 1, one observation per instance.",
    buckets=PROBABILITY_BUCKETS,
)
PREDICTED_CLASS = Counter("plinth_predicted_class", "Instances predicted per class.", ["class"])
REJECTED_REQUESTS = Counter("plinth_rejected_requests", "Requests to /predict answered 4xx, by reason.", ["reason"])
OUT_OF_RANGE = Counter(
    "plinth_out_of_range", "Values outside the training reference [min, max], per feature.", ["feature"]
)
INPUT_DRIFT_PSI = Gauge(
    "plinth_input_drift_psi",
    "Population stability index of the recent input window vs the training reference, per feature.",
    ["feature"],
    multiprocess_mode="livemax",
)


class InputMonitor:
    """Counts predictions and out-of-range values, and keeps a sliding window of inputs for drift."""

    def __init__(self, profile: ReferenceProfile, window: int) -> None:
        self.features = profile.feature_names
        stats = [profile.features[name] for name in self.features]
        self.minimum = np.array([s.minimum for s in stats])
        self.maximum = np.array([s.maximum for s in stats])
        n_bins = max(len(s.bin_shares) for s in stats)
        # Inner edges padded with +inf: counting edges below a value is searchsorted(side="left") for all
        # features at once, as in `profile.bin_shares`.
        self.edges = np.full((len(stats), n_bins - 1), np.inf)
        for index, s in enumerate(stats):
            self.edges[index, : len(s.bin_edges)] = s.bin_edges
        # Padding bins are empty on both sides, so they add exactly 0 to the PSI sum.
        self.expected = np.zeros((len(stats), n_bins))
        for index, s in enumerate(stats):
            self.expected[index, : len(s.bin_shares)] = s.bin_shares
        self.window = np.zeros((window, len(stats)), dtype=np.int32)
        self.counts = np.zeros((len(stats), n_bins), dtype=np.int64)
        self.filled = 0
        self.cursor = 0
        self.lock = threading.Lock()
        self.offsets = np.arange(len(stats)) * n_bins
        self.out_of_range = [OUT_OF_RANGE.labels(feature=name) for name in self.features]
        self.drift = [INPUT_DRIFT_PSI.labels(feature=name) for name in self.features]
        self.classes = (PREDICTED_CLASS.labels("0"), PREDICTED_CLASS.labels("1"))

    def observe(self, rows: np.ndarray, probability: np.ndarray) -> None:
        """Record one scored batch: `rows` (n, features) in training order, `probability` of class 1."""
        positives = int(np.count_nonzero(probability >= 0.5))
        for label, count in ((0, len(probability) - positives), (1, positives)):
            if count:
                self.classes[label].inc(count)
        for value in probability.tolist():
            PREDICTION_PROBABILITY.observe(value)
        outside = np.count_nonzero((rows < self.minimum) | (rows > self.maximum), axis=0)
        for index in np.flatnonzero(outside):
            self.out_of_range[index].inc(int(outside[index]))
        bins = np.count_nonzero(rows[:, :, None] > self.edges[None, :, :], axis=2)
        with self.lock:
            self._push(bins[-len(self.window) :])
            if self.filled >= min(DRIFT_MIN_ROWS, len(self.window)):
                for gauge, score in zip(self.drift, self.psi().tolist(), strict=True):
                    gauge.set(score)

    def _push(self, bins: np.ndarray) -> None:
        """Write binned rows (at most a window's worth) into the ring buffer and update the bin counts."""
        size, count = len(self.window), len(bins)
        positions = (self.cursor + np.arange(count)) % size
        evicted = max(0, self.filled + count - size)
        if evicted:
            self.counts -= self._histogram(self.window[positions[count - evicted :]])
        self.window[positions] = bins
        self.counts += self._histogram(bins)
        self.filled = min(size, self.filled + count)
        self.cursor = (self.cursor + count) % size

    def _histogram(self, bins: np.ndarray) -> np.ndarray:
        """Return (features, bins) counts of a block of binned rows."""
        n_bins = self.counts.shape[1]
        flat = (self.offsets + bins).ravel()
        return np.bincount(flat, minlength=self.counts.size).reshape(-1, n_bins)

    def psi(self) -> np.ndarray:
        """Return the PSI per feature of the current window."""
        return np.asarray(psi(self.expected, self.counts))
