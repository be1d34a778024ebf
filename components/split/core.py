"""Split: a seeded train/test split, so every candidate and the champion see the same test rows.

Classification splits are stratified by class; a regression split is a plain seeded shuffle. The search
(components/search) scores its trials on validation rows carved the same way from the training share, so
the test rows stay unseen until the evaluate step scores the one tuned model of each family.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from components.common.task import REGRESSION

# Share of the training rows carved off as validation rows (search scoring, threshold and calibration).
DEFAULT_VALIDATION_SIZE = 0.2


def split_positions(
    labels: pd.Series, test_size: float, seed: int, train_fraction: float = 1.0, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Return the (train, test) row positions of `split`: they depend on the labels, the sizes and the seed only.

    scikit-learn's `train_test_split` draws the same positions for the row numbers as for the frame, so the
    step can split a table it never turns into a DataFrame (`run`), and `split` on a frame gives the same rows.
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
    rows = np.arange(len(labels))
    train, test = train_test_split(rows, test_size=test_size, random_state=seed, stratify=labels if stratify else None)
    if train_fraction < 1.0:
        strata = labels.iloc[train] if stratify else None
        train, _ = train_test_split(train, train_size=train_fraction, random_state=seed, stratify=strata)
    return train, test


def validation_positions(
    labels: pd.Series, validation_size: float, seed: int, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Return the (kept, validation) positions among the training rows whose labels are `labels`."""
    if not 0.0 < validation_size < 1.0:
        raise ValueError(f"validation_size must be in (0, 1), got {validation_size}")
    rows = np.arange(len(labels))
    kept, validation = train_test_split(
        rows, test_size=validation_size, random_state=seed, stratify=labels if stratify else None
    )
    return kept, validation


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
    train, test = split_positions(frame[target], test_size, seed, train_fraction, stratify)
    return frame.iloc[train].reset_index(drop=True), frame.iloc[test].reset_index(drop=True)


def carve_validation(
    train: pd.DataFrame, target: str, validation_size: float, seed: int, stratify: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (train, validation): `validation_size` of the training rows, seeded (and stratified by class)."""
    kept, validation = validation_positions(train[target], validation_size, seed, stratify)
    return train.iloc[kept].reset_index(drop=True), train.iloc[validation].reset_index(drop=True)


def write_parts(
    dataset_path: str,
    target: str,
    test_size: float,
    seed: int,
    train_fraction: float,
    paths: tuple[str, str, str],
    stratify: bool,
    validation_size: float = DEFAULT_VALIDATION_SIZE,
) -> tuple[int, int, int]:
    """Write the (train, test, validation) parts of the table at `dataset_path`; return their row counts.

    The table stays an Arrow table: only the target becomes a pandas column (the positions depend on it
    alone), and each part is taken from the table and written as it is: the rows `split` and
    `carve_validation` give. A DataFrame of the table and a copy per part held the table about three times
    over at a million rows. An empty validation path carves no validation rows (0).
    """
    import pyarrow.parquet as pq

    train_path, test_path, validation_path = paths
    table = pq.read_table(dataset_path)
    labels = table.column(target).to_pandas()
    train, test = split_positions(labels, test_size, seed, train_fraction, stratify)
    held = 0
    if validation_path:
        kept, validation = validation_positions(labels.iloc[train], validation_size, seed, stratify)
        pq.write_table(table.take(train[validation]), validation_path)
        train, held = train[kept], len(validation)
    pq.write_table(table.take(train), train_path)
    pq.write_table(table.take(test), test_path)
    return len(train), len(test), held


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
    """Step entry: split the validated dataset (`write_parts`) and record the split's parameters on the parent run.

    With a `validation_path`, `validation_size` of the training rows become validation rows there.
    """
    from components.common import tracking

    paths = (train_path, test_path, validation_path)
    stratify = task != REGRESSION
    trained, tested, held = write_parts(
        dataset_path, target, test_size, seed, train_fraction, paths, stratify, validation_size
    )
    parameters: dict[str, float] = {"seed": seed, "test_size": test_size, "train_fraction": train_fraction}
    parameters["training_rows"] = trained  # what the run summary says the search sampled from
    if validation_path:
        parameters["validation_size"] = validation_size
    client = tracking.connect(tracking_uri)
    for key, value in parameters.items():
        client.log_param(run_id, key, value)
    validation = f", {held} validation rows" if validation_path else ""
    print(f"split: {trained} training rows{validation}, {tested} test rows (seed {seed})")
