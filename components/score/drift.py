"""Input drift of a scored table against the version's reference profile, counted chunk by chunk.

The bins are the profile's own (`FeatureProfile`: quantile bins or categories plus "other", then a missing
bin), the score is `profile.psi`, and categorical columns are counted as validation counts them
(`validate.reference.category_drift_counts` over `category_counts`: each distinct value named once), so a
scored table, a validated one and the model service's window read alike. Only the counts are kept between
chunks (one small array per feature), so the report costs no memory as the table grows. A model without a
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


@dataclass(frozen=True)
class DriftReport:
    """PSI per feature of the scored rows vs the reference, and the limit it is read against."""

    psi: dict[str, float]
    max_psi: float
    rows: int

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
            f"{self.rows} scored rows vs the version's training reference; PSI limit {self.max_psi}.",
            "",
            "| feature | PSI | |",
            "|---|---|---|",
        ]
        for name, score in sorted(self.psi.items(), key=lambda item: -item[1]):
            lines.append(f"| {name} | {score:.4f} | {'drifted' if score > self.max_psi else 'ok'} |")
        return "\n".join(lines) + "\n"


class DriftTally:
    """Drift-bin counts per feature over every chunk scored so far."""

    def __init__(self, profile: ReferenceProfile | None, max_psi: float = DEFAULT_MAX_PSI) -> None:
        self.profile = profile
        self.max_psi = max_psi
        self.rows = 0
        features = profile.features if profile else {}
        self.counts = {name: np.zeros(stats.n_bins, dtype=np.int64) for name, stats in features.items()}

    def add(self, batch: Batch) -> None:
        """Count one batch of scored rows into each feature's drift bins."""
        self.rows += batch.rows
        if self.profile is None:
            return
        for name, stats in self.profile.features.items():
            values = batch.column(name)
            if stats.is_numeric:
                self.counts[name] += stats.drift_counts(values)
                continue
            series = pd.Series(values, copy=False)
            self.counts[name] += category_drift_counts(stats, category_counts(series), int(series.isna().sum()))

    def report(self) -> DriftReport:
        """Return the PSI of every feature over all rows counted."""
        if self.profile is None or not self.rows:
            return DriftReport({}, self.max_psi, self.rows)
        scores = {
            name: float(psi(stats.expected_shares(), self.counts[name]))
            for name, stats in self.profile.features.items()
        }
        return DriftReport(scores, self.max_psi, self.rows)
