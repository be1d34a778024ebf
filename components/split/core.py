"""Split: a seeded train/test split, so every candidate and the champion see the same test rows.

Classification splits are stratified by class; a regression split is a plain seeded shuffle.
"""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from components.common.task import REGRESSION


def split(
    frame: pd.DataFrame,
    target: str,
    test_size: float,
    seed: int,
    train_fraction: float = 1.0,
    stratify: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (train, test); `train_fraction` < 1 keeps a (stratified) share of the training rows.

    The test set never depends on `train_fraction`, so runs trained on less data are still compared on
    exactly the same held-out rows.
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
    train, test = train_test_split(
        frame, test_size=test_size, random_state=seed, stratify=frame[target] if stratify else None
    )
    if train_fraction < 1.0:
        train, _ = train_test_split(
            train, train_size=train_fraction, random_state=seed, stratify=train[target] if stratify else None
        )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def run(
    dataset_path: str,
    target: str,
    test_size: float,
    seed: int,
    train_fraction: float,
    train_path: str,
    test_path: str,
    tracking_uri: str,
    run_id: str,
    task: str,
) -> None:
    """Step entry: split the validated dataset and record the split's parameters on the parent run."""
    from components.common import tracking

    frame = pd.read_parquet(dataset_path)
    train, test = split(frame, target, test_size, seed, train_fraction, stratify=task != REGRESSION)
    train.to_parquet(train_path, index=False)
    test.to_parquet(test_path, index=False)
    client = tracking.connect(tracking_uri)
    for key, value in {"seed": seed, "test_size": test_size, "train_fraction": train_fraction}.items():
        client.log_param(run_id, key, value)
    print(f"split: {len(train)} training rows, {len(test)} test rows (seed {seed})")
