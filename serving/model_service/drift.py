"""What the model sees: input drift, out-of-range values, unseen categories and missing values per feature.

Drift is scored against the reference profile saved with a plinth model, in the profile's own drift bins
(`FeatureProfile.bin_index`: value bins or categories plus "other", then a missing bin), so serving and
validation bin alike. The profile is compiled once per model (`drift_bins.py`): numeric features are binned
for all rows and features at once, categorical ones through a dict per feature, nulls counted in the same
pass. The window is a ring buffer of bin indices with running bin
counts, so each batch costs O(rows x features) and a PSI refresh O(features x bins), never a rescan.
The PSI is published once a fiftieth of the window has arrived since the last time (every 10 rows of the
default 500): one-row requests then pay for the score and its gauges a tenth as often, and the gauges lag
the window by less than 2 % of its rows.
A model without a profile (anyone else's) has no drift bins: only its missing values are counted.

No single caller fills the window: each request adds at most `rows_per_request` of its rows, sampled at
random (`per_request.py`), and the PSI is published only once the window spans `min_requests` distinct
requests (`PLINTH_DRIFT_ROWS_PER_REQUEST`, default 10; `PLINTH_DRIFT_MIN_REQUESTS`, default 50). Before that
the gauge is absent, which neither fires `PlinthInputDrift` nor passes the canary's input-drift check
("missing never counts as success"); if the window ever spans fewer again, the gauges read NaN, which does
neither either. With the defaults a full window (500 rows, at most 10 a request) always spans 50 requests.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pandas as pd
from prometheus_client import Counter, Gauge

from components.common.profile import ReferenceProfile, psi
from serving.model_service.columns import Batch, Column
from serving.model_service.drift_bins import CategoryBins, NumericBins

# Rows a window must hold before its PSI is published: fewer rows give a noisy, alarming score.
DRIFT_MIN_ROWS = 50
# The PSI is published again once this share of the window has arrived since it last was.
PUBLISH_SHARE = 1 / 50
# Rows pushed into the window one at a time rather than as a histogram (cheaper for the usual small batch).
FEW_ROWS = 4

INPUT_DRIFT_PSI = Gauge(
    "plinth_input_drift_psi",
    "Population stability index of the recent input window vs the training reference, per feature.",
    ["feature"],
    multiprocess_mode="livemax",
)
OUT_OF_RANGE = Counter(
    "plinth_out_of_range", "Numeric values outside the training reference [min, max], per feature.", ["feature"]
)
UNSEEN_CATEGORY = Counter(
    "plinth_unseen_category", "Categorical values not among the reference profile's categories.", ["feature"]
)
MISSING_VALUES = Counter("plinth_missing_values", "Null values received in optional columns.", ["feature"])


class InputMonitor:
    """Counts unusual inputs and keeps a sliding window of binned rows for the drift score."""

    def __init__(
        self,
        columns: Sequence[Column],
        profile: ReferenceProfile | None,
        window: int,
        min_requests: int = 50,
    ) -> None:
        self.enabled = profile is not None
        features = profile.feature_names if profile else []
        stats = [profile.features[name] for name in features] if profile else []
        optional = {c.name: MISSING_VALUES.labels(c.name) for c in columns if c.optional}
        # Nulls of a profiled feature are counted while it is binned; any other optional column on its own.
        self.optional = [(name, counter) for name, counter in optional.items() if name not in set(features)]
        self.optional_positions = np.array([i for i, c in enumerate(columns) if c.optional], dtype=np.intp)
        self.missing = [optional.get(name) for name in features]
        self.numeric = [i for i, s in enumerate(stats) if s.is_numeric]
        self.numeric_names = [features[i] for i in self.numeric]
        self.numeric_bins = NumericBins.of([stats[i] for i in self.numeric])
        self.categorical = [i for i, s in enumerate(stats) if not s.is_numeric]
        self.category_bins = [(features[i], CategoryBins.of(stats[i])) for i in self.categorical]
        self.others = np.array([lookup.other for _, lookup in self.category_bins], dtype=np.int32)
        width = max((s.n_bins for s in stats), default=1)
        # Padding bins are empty on both sides, so they add exactly 0 to the PSI sum.
        self.expected = np.zeros((len(stats), width))
        for row, s in enumerate(stats):
            self.expected[row, : s.n_bins] = s.expected_shares()
        self.window = np.zeros((window, len(stats)), dtype=np.int32)
        # The request each window row came from (numbered in arrival order): rows of one request are
        # contiguous and leave in order, so the window spans newest - oldest + 1 requests.
        self.request_of = np.zeros(window, dtype=np.int64)
        self.requests = 0  # the next request number, when the caller does not number them
        self.min_requests = min(min_requests, window)
        self.withheld = False
        self.counts = np.zeros((len(stats), width), dtype=np.int64)
        self.offsets = np.arange(len(stats)) * width
        self.filled = self.cursor = self.unpublished = 0
        self.publish_rows = max(1, int(window * PUBLISH_SHARE))
        self.lock = threading.Lock()
        self.out_of_range = [OUT_OF_RANGE.labels(name) for name in self.numeric_names]
        self.unseen = [UNSEEN_CATEGORY.labels(name) for name, _ in self.category_bins]
        self.features = features
        self.drift: list[Gauge] = []  # created with the first published score: no series before then

    def observe(self, batch: Batch, rows: np.ndarray | None = None, owners: np.ndarray | None = None) -> None:
        """Record one validated batch; only `rows` of it enter the window, `owners` their request numbers.

        Both come from `per_request` (a sample of each request); without them the batch is one request.
        """
        if not self.enabled:
            self._count_missing(batch)
            return
        if self.optional:
            self._count_missing(batch)
        bins = np.empty((batch.rows, len(self.features)), dtype=np.int32)
        nulls = np.zeros(len(self.features), dtype=np.int64)
        if self.numeric:
            bins[:, self.numeric], nulls[self.numeric] = self._numeric_bins(batch)
        if self.categorical:
            self._category_bins(batch, bins, nulls)
        for index in np.flatnonzero(nulls).tolist():
            counter = self.missing[index]
            if counter is not None:
                counter.inc(int(nulls[index]))
        if rows is None or owners is None:
            rows, owners = np.arange(batch.rows), np.full(batch.rows, self.requests, dtype=np.int64)
        if not len(rows):
            return
        with self.lock:
            keep = slice(-len(self.window), None)
            self._push(bins[rows][keep], owners[keep])
            self.requests = int(owners[-1]) + 1
            self.unpublished += len(rows)
            if self.spanned() < self.min_requests:
                self._withhold()
            elif self.filled >= min(DRIFT_MIN_ROWS, len(self.window)) and self.unpublished >= self.publish_rows:
                self.unpublished, self.withheld = 0, False
                self.drift = self.drift or [INPUT_DRIFT_PSI.labels(name) for name in self.features]
                for gauge, score in zip(self.drift, self.psi().tolist(), strict=True):
                    gauge.set(score)

    def spanned(self) -> int:
        """Return how many distinct requests the window's rows come from."""
        if not self.filled:
            return 0
        oldest = self.cursor if self.filled == len(self.window) else 0
        newest = (self.cursor - 1) % len(self.window)
        return int(self.request_of[newest] - self.request_of[oldest]) + 1

    def _withhold(self) -> None:
        """A window of too few requests scores nothing: published gauges read NaN (never before the first)."""
        if self.drift and not self.withheld:
            for gauge in self.drift:
                gauge.set(float("nan"))
            self.withheld = True

    def _count_missing(self, batch: Batch) -> None:
        """Count the nulls of optional columns that have no drift bins (every one, for a model without a profile)."""
        if batch.block is not None and not self.enabled:  # one pass over a float block
            gaps = np.isnan(batch.block[:, self.optional_positions]).sum(axis=0)
            for index in np.flatnonzero(gaps).tolist() if gaps.any() else ():
                self.optional[index][1].inc(int(gaps[index]))
            return
        for name, counter in self.optional:
            missing = int(np.count_nonzero(pd.isna(batch.column(name))))
            if missing:
                counter.inc(missing)

    def _numeric_bins(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Count out-of-range values; return the drift bins and null counts of every numeric feature."""
        if batch.block is not None and len(self.numeric) == batch.block.shape[1]:
            values = batch.block
        else:
            values = np.column_stack([batch.column(name) for name in self.numeric_names]).astype(np.float64)
        bins, outside, nulls = self.numeric_bins.bins(values)
        for index in np.flatnonzero(outside).tolist():
            self.out_of_range[index].inc(int(outside[index]))
        return bins, nulls

    def _category_bins(self, batch: Batch, bins: np.ndarray, nulls: np.ndarray) -> None:
        """Write the drift bins of every categorical feature into `bins`, their nulls into `nulls`; count unseen."""
        codes = []
        for position, (name, lookup) in enumerate(self.category_bins):
            column, missing = lookup.bins(batch.column(name))
            codes.append(column)
            nulls[self.categorical[position]] = missing
        block = np.array(codes, dtype=np.int32).reshape(len(codes), batch.rows).T
        bins[:, self.categorical] = block
        unseen = (block == self.others).sum(axis=0)
        for index in np.flatnonzero(unseen).tolist():
            self.unseen[index].inc(int(unseen[index]))

    def _push(self, bins: np.ndarray, requests: np.ndarray) -> None:
        """Write binned rows (at most a window's worth) and their request numbers into the ring buffer."""
        size, count = len(self.window), len(bins)
        positions = (self.cursor + np.arange(count)) % size
        evicted = max(0, self.filled + count - size)
        if count <= FEW_ROWS:  # a row's features are distinct cells of the counts: no histogram needed
            flat = self.counts.reshape(-1)
            for row in self.window[positions[count - evicted :]] if evicted else ():
                flat[self.offsets + row] -= 1
            for row in bins:
                flat[self.offsets + row] += 1
        else:
            if evicted:
                self.counts -= self._histogram(self.window[positions[count - evicted :]])
            self.counts += self._histogram(bins)
        self.window[positions] = bins
        self.request_of[positions] = requests
        self.filled = min(size, self.filled + count)
        self.cursor = (self.cursor + count) % size

    def _histogram(self, bins: np.ndarray) -> np.ndarray:
        """Return (features, bins) counts of a block of binned rows."""
        flat = (self.offsets + bins).ravel()
        return np.bincount(flat, minlength=self.counts.size).reshape(self.counts.shape)

    def psi(self) -> np.ndarray:
        """Return the PSI per feature of the current window."""
        return np.asarray(psi(self.expected, self.counts))
