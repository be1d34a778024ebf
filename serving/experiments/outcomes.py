"""Each variant's outcomes, summed from the shared prediction store since the experiment began.

An outcome belongs to the version that made the prediction (the store copies it onto every label and
outcome), whichever replica or pod the feedback reached, so variants are told apart by model version and must
be distinct versions. The experiment reads the store itself rather than the live-quality exporter's
Summaries: a mean test needs each variant's sum of squares, which no Summary carries, and the store is the
one place every replica's feedback meets.

- `label`: a classifier's labels give 1 (right) or 0 (wrong) per labelled prediction, higher is better; a
  regressor's give the absolute error, lower is better.
- `value`: the business value posted to /feedback as `outcome` (revenue, a click as 1), higher is better.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from serving.model_service.store import LABELS, OUTCOMES, PredictionStore


@dataclass(frozen=True)
class Tally:
    """One variant's outcomes: how many, their sum and sum of squares (enough for a mean and its variance)."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    @property
    def mean(self) -> float:
        """Return the mean outcome, NaN without any."""
        return self.total / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Return the sample variance of one outcome, NaN with fewer than two."""
        if self.n < 2:
            return math.nan
        return max(0.0, (self.squares - self.total * self.total / self.n) / (self.n - 1))


@dataclass(frozen=True)
class Outcomes:
    """Every variant's tally by model version, what the tallies measure, and whether higher is better."""

    tallies: dict[str, Tally]
    measure: str
    higher_is_better: bool = True

    def of(self, version: str) -> Tally:
        """Return a version's tally (empty before its first outcome)."""
        return self.tallies.get(version, Tally())


def _sums(column: sa.ColumnElement[float]) -> tuple[sa.ColumnElement[int], ...]:
    return sa.func.count(column), sa.func.sum(column), sa.func.sum(column * column)


def read_outcomes(
    store: PredictionStore, model_name: str, versions: Iterable[str], since_ms: int, metric: str
) -> Outcomes:
    """Return the outcomes of `versions`' predictions made at or after `since_ms` (Unix ms).

    Raises:
        StoreError: the store cannot be read.
    """
    wanted = sorted(set(versions))
    if metric == "value":
        table, columns = OUTCOMES, [OUTCOMES.c.value]
    else:
        table, columns = LABELS, [LABELS.c.correct, LABELS.c.abs_error]
    query = (
        sa.select(table.c.model_version, *(part for column in columns for part in _sums(column)))
        .where(table.c.model_name == model_name, table.c.model_version.in_(wanted), table.c.predicted_at >= since_ms)
        .group_by(table.c.model_version)
    )
    rows = store.read(query)
    if metric == "value":
        return Outcomes({r[0]: Tally(int(r[1]), float(r[2] or 0), float(r[3] or 0)) for r in rows}, "mean outcome")
    correct = {r[0]: Tally(int(r[1]), float(r[2] or 0), float(r[3] or 0)) for r in rows if r[1]}
    errors = {r[0]: Tally(int(r[4]), float(r[5] or 0), float(r[6] or 0)) for r in rows if r[4]}
    if errors and not correct:
        return Outcomes(errors, "mean absolute error", higher_is_better=False)
    return Outcomes(correct, "accuracy")
