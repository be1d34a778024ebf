"""An imbalanced binary table (about 8 % positives, noisy) and a candidate finalised on its validation rows.

On such a table the 0.5 rule answers the majority class almost always; the tests of the decision threshold
(`decision.py`) and of everything that applies it (serving, batch scoring, evaluation) share these rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from components.common.decision import Decision, finalize
from components.common.features import split_target
from components.common.profile import ReferenceProfile, build_profile
from components.common.task import infer_task
from components.train_sklearn.core import as_saved, build_model

TARGET = "bought"


def imbalanced_frame(rows: int = 4000, seed: int = 0) -> pd.DataFrame:
    """Return rows whose positive class is rare and only weakly separable (no rule reaches it at P >= 0.5)."""
    rng = np.random.default_rng(seed)
    visits = rng.normal(size=rows)
    spend = rng.normal(size=rows)
    region = rng.choice(["north", "south", "east"], size=rows)
    logit = -3.2 + 1.1 * visits + 0.6 * spend + np.where(region == "east", 0.5, 0.0)
    bought = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame({"visits": visits, "spend": spend, "region": region, TARGET: bought.astype(np.int64)})


@dataclass(frozen=True)
class Finalised:
    """The candidate fitted on the training rows and finalised on the validation rows, and the held-out rows."""

    profile: ReferenceProfile
    model: Any
    decision: Decision
    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_test: pd.Series


def finalised_candidate(objective: str = "f1") -> Finalised:
    """Fit the scikit-learn candidate on 60 % of the table, finalise it on 20 %, keep 20 % for testing."""
    frame = imbalanced_frame()
    profile = build_profile(frame, TARGET, infer_task(frame[TARGET]))
    train, rest = train_test_split(frame, test_size=0.4, random_state=0, stratify=frame[TARGET])
    validation, test = train_test_split(rest, test_size=0.5, random_state=0, stratify=rest[TARGET])
    x_train, y_train = split_target(train, profile)
    x_val, y_val = split_target(validation, profile)
    x_test, y_test = split_target(test, profile)
    model = as_saved(build_model(profile, seed=0).fit(x_train, y_train))
    model, decision = finalize(model, x_val, y_val, profile, objective)
    return Finalised(profile, model, decision, x_train, x_test, y_test)
