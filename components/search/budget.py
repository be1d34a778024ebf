"""The search's row budget: trials fit on a seeded, stratified sample of the fitting rows, not on all of them.

A trial only has to rank hyper-parameters; the winner is then fitted once on every fitting row by the
family's training step. So a trial fits on at most `TRIAL_ROWS` of the training rows and is scored on at
most `SCORE_ROWS` of the validation rows, both drawn seeded (and stratified by class for classification,
every class kept), whatever the table's size.

Why these numbers, on a 2-core step and the default 15 s a shard:

- 100,000 fitting rows keeps one trial to seconds, not minutes, so the search costs about the same from
  100k rows to millions. On the 1M-row `make bench-scale` table (640,000 training rows, 27 columns, a
  2-core machine under a load of 8-20) one fixed-settings trial on every row took 86 s (XGBoost), 48 s (the
  MLP) and over 6 minutes (HistGradientBoosting): a 15 s shard ran that one trial, and the search was most
  of `make train`. At 64,000 rows, on the same machine, trials took 1-2 s (linear), 4-8 s (MLP), 5-15 s
  (XGBoost) and 26 s (HistGradientBoosting). 100,000 rows is also enough that the rankings hold: the
  spaces' ranges span decades, far beyond a trial's fitting noise at that size.
- 50,000 scoring rows put the standard error of a ROC AUC near 0.002 and of an accuracy near 0.002, under
  the differences that decide between trials; scoring more rows costs prediction time in every trial.

Tables smaller than the budget are searched on every row, as before.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Most training rows a trial fits on, and most validation rows it is scored on (see the module docstring).
TRIAL_ROWS = 100_000
SCORE_ROWS = 50_000


def sample_positions(labels: pd.Series, rows: int, seed: int, stratify: bool) -> np.ndarray:
    """Return the sorted positions of at most `rows` rows, seeded; per class in proportion when `stratify`.

    Every class keeps at least one row, so a trial's model knows every class the task has (a rare class would
    otherwise vanish from a small sample and the trial's probabilities would lack its column).
    """
    total = len(labels)
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if total <= rows:
        return np.arange(total)
    rng = np.random.default_rng(seed)
    if not stratify:
        return np.sort(rng.choice(total, size=rows, replace=False))
    codes, _classes = pd.factorize(labels, sort=True)
    share = rows / total
    picked = []
    for code in range(int(codes.max()) + 1):
        members = np.flatnonzero(codes == code)
        take = min(len(members), max(1, round(len(members) * share)))
        picked.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(picked))


def within(
    rows: tuple[pd.DataFrame, pd.Series], limit: int, seed: int, stratify: bool
) -> tuple[pd.DataFrame, pd.Series]:
    """Return (features, labels) cut to at most `limit` rows by `sample_positions`; the same objects if fewer."""
    features, labels = rows
    if len(labels) <= limit:
        return features, labels
    positions = sample_positions(labels, limit, seed, stratify)
    return features.iloc[positions].reset_index(drop=True), labels.iloc[positions].reset_index(drop=True)


def describe(used: int, total: int) -> str:
    """Return how many rows a search used, as the step's log and the run summary say it."""
    return f"searched on {used:,} of {total:,} rows"
