"""Tables every component test can use: one per task, plus the mixed-type one, split as the pipeline does."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from components.common.features import split_target
from components.common.profile import ReferenceProfile, build_profile
from components.common.task import infer_task
from components.ingest.core import load_source
from components.split.core import split

SOURCES = {
    "binary": ("sklearn:breast_cancer", "target"),
    "multiclass": ("sklearn:wine", "target"),
    "regression": ("sklearn:diabetes", "target"),
    "mixed": ("synthetic:churn", "churned"),
}


@dataclass(frozen=True)
class Table:
    """A dataset, its profile, and its training and test rows as typed features and targets."""

    frame: pd.DataFrame
    profile: ReferenceProfile
    x_train: pd.DataFrame
    y_train: pd.Series
    x_test: pd.DataFrame
    y_test: pd.Series


def make_table(name: str) -> Table:
    source, target = SOURCES[name]
    frame = load_source(source)
    profile = build_profile(frame, target, infer_task(frame[target]))
    train, test = split(frame, target, 0.25, seed=0, stratify=profile.task.is_classification)
    return Table(frame, profile, *split_target(train, profile), *split_target(test, profile))


@pytest.fixture(scope="session")
def tables() -> dict[str, Table]:
    return {name: make_table(name) for name in SOURCES}


@pytest.fixture(scope="session")
def breast_cancer() -> pd.DataFrame:
    return load_source("sklearn:breast_cancer")
