"""Sampling Shapley values for a model that offers no exact ones (the torch MLP), seeded and exact in sum.

The explainer is the permutation estimator of Štrumbelj and Kononenko (2014), the one `shap.PermutationExplainer`
implements, with antithetic permutations: for each background row b and a seeded permutation of the
features, the row is walked from b to x one feature at a time (and again in the reversed order), and each
step's change in the model's output is credited to the feature that step sets. Averaged over the walks, the
credits are the interventional Shapley values against the background; each walk's credits sum to
f(x) - f(b) exactly, so `base + sum(contributions) == f(x)` holds for every row whatever the number of walks.

The background is drawn from the model's reference profile (no training rows live beside a served model):
numeric features uniformly inside their quantile bins (in proportion to each bin's share, the outer bins
bounded by the minimum and maximum), categorical features among the profiled categories by their shares, and
a missing value as often as the reference had one. Features are drawn independently, as KernelSHAP assumes.
`shap` itself is not a dependency: it pulls numba and llvmlite into every image for these forty lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from components.common.profile import FeatureProfile, ReferenceProfile

# Background rows; every one is walked twice (a permutation and its reverse).
BACKGROUND_ROWS = 32
# Model rows scored per call while walking: bounds the memory of one explanation, and how long one call holds
# the interpreter (a served model's /predict threads run between calls; 50,000 rows a call held them ~0.5 s).
MAX_WALK_ROWS = 16_384

Output = Callable[[pd.DataFrame], np.ndarray]


def _numeric(stats: FeatureProfile, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Draw values inside the profile's quantile bins, each bin as often as its share."""
    bounds = np.array([stats.minimum, *stats.bin_edges, stats.maximum], dtype=float)
    shares = np.asarray(stats.bin_shares, dtype=float)
    if shares.size != bounds.size - 1 or shares.sum() <= 0:
        return np.full(rows, stats.mean)
    which = rng.choice(shares.size, size=rows, p=shares / shares.sum())
    low, high = bounds[which], np.maximum(bounds[which + 1], bounds[which])
    return low + (high - low) * rng.random(rows)


def _categorical(stats: FeatureProfile, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Draw the profiled categories by their shares (the unnamed "other" share is left out)."""
    shares = np.asarray(stats.bin_shares[: len(stats.categories)], dtype=float)
    names = np.array(stats.categories, dtype=object)
    if shares.sum() <= 0:
        return np.full(rows, None, dtype=object)
    return names[rng.choice(names.size, size=rows, p=shares / shares.sum())]


def background(profile: ReferenceProfile, rows: int = BACKGROUND_ROWS, seed: int = 0) -> pd.DataFrame:
    """Return `rows` seeded rows drawn feature by feature from the reference profile, in training order."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for name, stats in profile.features.items():
        missing = rng.random(rows) < stats.missing_share
        if stats.is_numeric:
            columns[name] = np.where(missing, np.nan, _numeric(stats, rows, rng))
        else:
            drawn = _categorical(stats, rows, rng)
            drawn[missing] = None
            columns[name] = drawn
    return pd.DataFrame(columns)


def _walk_rows(frame: pd.DataFrame, base: pd.DataFrame, order: np.ndarray) -> pd.DataFrame:
    """Return, per row of `frame` and walk, the rows between base and x after 1..p-1 steps (row-major)."""
    n, paths, features = len(frame), order.shape[0], order.shape[1]
    rank = np.argsort(order, axis=1)  # rank[l, j]: at which step walk l sets feature j
    steps = np.arange(1, features)
    columns = {}
    for j, name in enumerate(frame.columns):
        taken = rank[:, j][:, None] < steps[None, :]  # (paths, steps): x's value already set
        numeric = pd.api.types.is_float_dtype(frame[name]) and pd.api.types.is_float_dtype(base[name])
        kind = np.float64 if numeric else object
        x = frame[name].to_numpy(dtype=kind)[:, None, None]
        b = base[name].to_numpy(dtype=kind)[None, :, None]
        values = np.where(taken[None, :, :], x, b).reshape(n * paths * (features - 1))
        columns[name] = values if numeric else pd.Series(values, dtype=object).infer_objects()
    return pd.DataFrame(columns)


def sampled_contributions(
    output: Output, frame: pd.DataFrame, profile: ReferenceProfile, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return (base values (k,), contributions (n, p, k)) of `output` (n, k) for the rows of `frame`.

    `output` must be deterministic (a fitted model's scoring function); the base value is its mean over
    the background, the same for every row.
    """
    rng = np.random.default_rng(seed)
    start = background(profile, BACKGROUND_ROWS, seed)[list(frame.columns)]
    features = frame.shape[1]
    forward = np.array([rng.permutation(features) for _ in range(len(start))])
    order = np.concatenate([forward, forward[:, ::-1]])  # antithetic: each permutation and its reverse
    base = pd.concat([start, start], ignore_index=True)
    at_base = output(base)  # (paths, k)
    at_x = output(frame)  # (n, k)
    paths, k = at_base.shape
    result = np.zeros((len(frame), features, k))
    chunk = max(1, MAX_WALK_ROWS // (paths * max(features - 1, 1)))
    for first in range(0, len(frame), chunk):
        rows = frame.iloc[first : first + chunk]
        inner = output(_walk_rows(rows, base, order)) if features > 1 else np.empty((0, k))
        chain = np.concatenate(
            [
                np.broadcast_to(at_base[None, :, None, :], (len(rows), paths, 1, k)),
                inner.reshape(len(rows), paths, features - 1, k),
                np.broadcast_to(at_x[first : first + len(rows), None, None, :], (len(rows), paths, 1, k)),
            ],
            axis=2,
        )
        steps = np.diff(chain, axis=2)  # (rows, paths, features, k): step s credits feature order[l, s]
        for path in range(paths):
            result[first : first + len(rows), order[path], :] += steps[:, path] / paths
        time.sleep(0)  # let the process's other threads (a served model's /predict) have the interpreter
    return at_base.mean(axis=0), result
