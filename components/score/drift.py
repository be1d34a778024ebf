"""Input drift of a scored table against the version's reference profile, counted chunk by chunk.

The bins are the profile's own (`FeatureProfile`: quantile bins or categories plus "other", then a missing
bin), the score is `profile.psi`, and categorical columns are counted as validation counts them
(`validate.reference.category_drift_counts` over `category_counts`: each distinct value named once), so a
scored table, a validated one and the model service's window read alike. Only the counts are kept between
chunks (one small array per feature), so the report costs no memory as the table grows; a chunk larger than
ROWS_PER_CHUNK is counted on a random sample of that many of its rows. A model without a
profile (anyone else's) has no bins: the report says so instead of scoring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.common.profile import ReferenceProfile, category_counts, psi
from components.validate.reference import category_drift_counts
from components.validate.thresholds import Thresholds
from serving.model_service.columns import Batch

DEFAULT_MAX_PSI = Thresholds().max_psi
# Rows of each chunk counted into the bins, drawn at random (seeded): binning every value of a million rows costs
# as much as scoring them, and a PSI over 10,000 rows a chunk (100,000 per million) is within about 0.001 of the
# whole table's, far below any limit it is read against.
ROWS_PER_CHUNK = 10_000
SAMPLE_SEED = 26


def sample(batch: Batch, rows: np.ndarray) -> Batch:
    """Return the given rows of a typed batch."""
    if batch.block is not None:
        return Batch(batch.index, batch.block[rows])
    return Batch(batch.index, None, {name: values[rows] for name, values in batch.arrays.items()})


@dataclass(frozen=True)
class DriftReport:
    """PSI per feature of the scored rows vs the reference, and the limit it is read against."""

    psi: dict[str, float]
    max_psi: float
    rows: int
    counted: int = 0

    @property
    def drifted(self) -> list[str]:
        """Return the features whose PSI is above the limit, most drifted first."""
        over = [name for name, score in self.psi.items() if score > self.max_psi]
        return sorted(over, key=lambda name: -self.psi[name])

    def to_markdown(self) -> str:
        """Return the report as a Markdown table (the MLflow artifact)."""
        if not self.psi:
            return "# Input drift\n\nNot scored: the version has no reference profile (not a plinth model).\n"
        lines = [
            "# Input drift",
            "",
            f"{self.rows} scored rows ({self.counted} of them binned, drawn at random from every chunk) vs the "
            f"version's training reference; PSI limit {self.max_psi}.",
            "",
            "| feature | PSI | |",
            "|---|---|---|",
        ]
        for name, score in sorted(self.psi.items(), key=lambda item: -item[1]):
            lines.append(f"| {name} | {score:.4f} | {'drifted' if score > self.max_psi else 'ok'} |")
        return "\n".join(lines) + "\n"


class DriftTally:
    """Drift-bin counts per feature over every chunk scored so far."""

    def __init__(
        self, profile: ReferenceProfile | None, max_psi: float = DEFAULT_MAX_PSI, rows_per_chunk: int = ROWS_PER_CHUNK
    ) -> None:
        self.profile = profile
        self.max_psi = max_psi
        self.rows_per_chunk = rows_per_chunk
        self.random = np.random.default_rng(SAMPLE_SEED)
        self.rows = self.counted = 0
        features = profile.features if profile else {}
        self.counts = {name: np.zeros(stats.n_bins, dtype=np.int64) for name, stats in features.items()}
        self.numeric = [name for name, stats in features.items() if stats.is_numeric]
        numeric = [features[name] for name in self.numeric]
        # Inner edges padded with +inf (no value lies above one), so one comparison per edge bins every feature.
        self.edges = np.full((len(numeric), max((len(s.bin_edges) for s in numeric), default=0)), np.inf)
        for row, stats in enumerate(numeric):
            self.edges[row, : len(stats.bin_edges)] = stats.bin_edges
        self.missing_bin = np.array([len(stats.bin_shares) for stats in numeric], dtype=np.int64)
        self.width = max((stats.n_bins for stats in numeric), default=1)

    def add(self, batch: Batch) -> None:
        """Count one batch of scored rows (a random sample of ROWS_PER_CHUNK when larger) into the drift bins."""
        self.rows += batch.rows
        if self.profile is None:
            return
        rows = None
        if batch.rows > self.rows_per_chunk:
            rows = np.sort(self.random.choice(batch.rows, self.rows_per_chunk, replace=False))
        self.counted += batch.rows if rows is None else len(rows)
        if batch.block is not None and list(batch.index) == self.numeric == list(self.profile.features):
            # An all-number model: its (Fortran-order) block read by feature, each feature's sample contiguous.
            self._add_numeric(batch.block.T if rows is None else batch.block.T.take(rows, axis=1))
            return
        if rows is not None:
            batch = sample(batch, rows)
        if self.numeric:
            self._add_numeric(np.vstack([batch.column(name) for name in self.numeric]).astype(np.float64))
        for name, stats in self.profile.features.items():
            if stats.is_numeric:
                continue
            values = batch.column(name)
            series = pd.Series(values, copy=False)
            self.counts[name] += category_drift_counts(stats, category_counts(series), int(series.isna().sum()))

    def _add_numeric(self, values: np.ndarray) -> None:
        """Count (numeric features, rows) values into their bins: `FeatureProfile.bin_index` for all at once."""
        index = np.zeros(values.shape, dtype=np.int16)
        for edge in range(self.edges.shape[1]):  # bin i: (edges[i-1], edges[i]]
            np.add(index, values > self.edges[:, edge, None], out=index, casting="unsafe")
        index = np.where(np.isnan(values), self.missing_bin[:, None], index)
        offsets = index + (np.arange(len(self.numeric)) * self.width)[:, None]
        counts = np.bincount(offsets.ravel(), minlength=len(self.numeric) * self.width).reshape(-1, self.width)
        for row, name in enumerate(self.numeric):
            self.counts[name] += counts[row, : len(self.counts[name])]

    def report(self) -> DriftReport:
        """Return the PSI of every feature over all rows counted."""
        if self.profile is None or not self.rows:
            return DriftReport({}, self.max_psi, self.rows, self.counted)
        scores = {
            name: float(psi(stats.expected_shares(), self.counts[name]))
            for name, stats in self.profile.features.items()
        }
        return DriftReport(scores, self.max_psi, self.rows, self.counted)
