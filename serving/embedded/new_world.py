"""A drifted world for the CT demo: the same patients, measured by a recalibrated scanner.

Texture and smoothness now read two standard deviations higher and the concavity readings no longer follow
the tumour (a faulty sensor). A champion trained before the change scores the new rows worse (measured with
the pipeline's logistic regression: ROC AUC 0.998 on the old world, 0.95 on the new one; XGBoost 0.99 →
0.89), while a model retrained on the new rows is as good as before, so the gate proposes it. The shifted
features push their PSI far above the drift alert's threshold within seconds of traffic.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

SHIFTED = ("mean_texture", "worst_texture", "mean_smoothness", "worst_smoothness")
SCRAMBLED = ("mean_concave_points", "worst_concave_points", "mean_concavity", "worst_concavity")
SHIFT_STDS = 2.0


def recalibrated(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Return `frame` as the recalibrated scanner reads it (labels untouched)."""
    drifted = frame.copy()
    for column in SHIFTED:
        drifted[column] = frame[column] + SHIFT_STDS * frame[column].std()
    order = np.random.default_rng(seed).permutation(len(frame))
    for column in SCRAMBLED:
        drifted[column] = frame[column].to_numpy()[order]
    return drifted


def write_source(frame: pd.DataFrame, path: Path) -> Path:
    """Write the training source as CSV atomically: a run never reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp")
    frame.to_csv(staging, index=False)
    os.replace(staging, path)
    return path
