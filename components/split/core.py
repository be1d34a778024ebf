"""Split: a seeded train/test split, so every candidate and the champion see the same test rows.

Classification splits are stratified by class; a regression split is a plain seeded shuffle. The search
(components/search) scores its trials on validation rows carved the same way from the training share, so
the test rows stay unseen until the evaluate step scores the one tuned model of each family.
"""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from components.common.task import REGRESSION

# Share of the training rows carved off as validation rows (search scoring, threshold and calibration).
DEFAULT_VALIDATION_SIZE = 0.2


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


def carve_validation(
    train: pd.DataFrame, target: str, validation_size: float, seed: int, stratify: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (train, validation): `validation_size` of the training rows, seeded (and stratified by class)."""
    if not 0.0 < validation_size < 1.0:
        raise ValueError(f"validation_size must be in (0, 1), got {validation_size}")
    kept, validation = train_test_split(
        train, test_size=validation_size, random_state=seed, stratify=train[target] if stratify else None
    )
    return kept.reset_index(drop=True), validation.reset_index(drop=True)


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
    validation_path: str = "",
    validation_size: float = DEFAULT_VALIDATION_SIZE,
) -> None:
    """Step entry: split the validated dataset and record the split's parameters on the parent run.

    With a `validation_path`, `validation_size` of the training rows become validation rows there.
    """
    from components.common import tracking

    frame = pd.read_parquet(dataset_path)
    stratify = task != REGRESSION
    train, test = split(frame, target, test_size, seed, train_fraction, stratify=stratify)
    parameters: dict[str, float] = {"seed": seed, "test_size": test_size, "train_fraction": train_fraction}
    validation = None
    if validation_path:
        train, validation = carve_validation(train, target, validation_size, seed, stratify=stratify)
        validation.to_parquet(validation_path, index=False)
        parameters["validation_size"] = validation_size
    train.to_parquet(train_path, index=False)
    test.to_parquet(test_path, index=False)
    client = tracking.connect(tracking_uri)
    for key, value in parameters.items():
        client.log_param(run_id, key, value)
    held = "" if validation is None else f", {len(validation)} validation rows"
    print(f"split: {len(train)} training rows{held}, {len(test)} test rows (seed {seed})")
