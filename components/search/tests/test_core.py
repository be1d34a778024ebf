"""The search driver on real tiny tables: it beats the fixed settings where they are poor, weighs classes where
a table is imbalanced, runs nothing at 0 trials, and shares trials out over shards."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from components.common.features import split_target
from components.common.profile import ReferenceProfile, build_profile
from components.common.task import infer_task
from components.common.tests.imbalanced import TARGET, imbalanced_frame
from components.search.core import ShardResult, Trial, best_trial, collect, run_study, shard_trials
from components.search.families import builder

Rows = tuple[pd.DataFrame, pd.Series]


def prepared(frame: pd.DataFrame, target: str, stratify: bool) -> tuple[ReferenceProfile, Rows, Rows]:
    profile = build_profile(frame, target, infer_task(frame[target]))
    train, validation = train_test_split(
        frame, test_size=0.3, random_state=0, stratify=frame[target] if stratify else None
    )
    return profile, split_target(train, profile), split_target(validation, profile)


def wide_noisy_regression(rows: int = 200, columns: int = 150) -> pd.DataFrame:
    """More columns than a ridge with alpha 1 can take on so few rows: the fixed settings overfit badly."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(rows, columns))
    target = values[:, :5].sum(axis=1) + rng.normal(scale=2.0, size=rows)
    return pd.DataFrame(values, columns=[f"f{i}" for i in range(columns)]).assign(value=target)


def test_search_beats_the_fixed_settings_where_they_are_poor():
    profile, train, validation = prepared(wide_noisy_regression(), "value", stratify=False)
    build = builder("sklearn", profile, seed=0, device="cpu", time_budget_s=60)
    result = run_study("sklearn", build, profile, train, validation, "r2", trials=8, seconds=60, seed=0)
    fixed, best = result.trials[0], best_trial(result.trials, "r2")
    assert fixed.params == {"c": 1.0}  # the first trial is build_model's defaults
    assert fixed.score < -1.0  # ridge with alpha 1 on 140 rows and 150 columns
    assert best.score > fixed.score + 1.0
    assert best.params["c"] < 0.5  # stronger regularisation won
    again = run_study("sklearn", build, profile, train, validation, "r2", trials=8, seconds=60, seed=0)
    assert [t.params for t in again.trials] == [t.params for t in result.trials]  # seeded


@pytest.mark.parametrize("family", ["sklearn", "xgboost", "torch"])
def test_class_weights_are_chosen_on_an_imbalanced_table(family):
    profile, train, validation = prepared(imbalanced_frame(rows=1500), TARGET, stratify=True)
    build = builder(family, profile, seed=0, device="cpu", time_budget_s=60, trial=True)
    result = run_study(family, build, profile, train, validation, "f1", trials=8, seconds=60, seed=0)
    fixed, best = result.trials[0], best_trial(result.trials, "f1")
    assert fixed.params["class_weight"] is None
    assert best.params["class_weight"] == "balanced"
    assert best.score > fixed.score + 0.1  # the 0.5 rule finds the rare class once it weighs as much


def test_no_trials_means_the_fixed_settings():
    profile, train, validation = prepared(imbalanced_frame(rows=300), TARGET, stratify=True)
    build = builder("sklearn", profile, seed=0, device="cpu", time_budget_s=60)
    result = run_study("sklearn", build, profile, train, validation, "roc_auc", trials=0, seconds=60, seed=0)
    assert result.trials == []
    assert collect([result.to_json()]) == []


def test_trials_are_shared_out_over_shards_and_the_best_of_all_wins():
    assert [shard_trials(10, 3, shard) for shard in range(3)] == [4, 3, 3]
    assert sum(shard_trials(7, 7, shard) for shard in range(7)) == 7
    with pytest.raises(ValueError, match="not one of 2 shards"):
        shard_trials(4, 2, 2)
    first = ShardResult("torch", 0, "log_loss", [Trial(0, 0, {"hidden": 32}, 0.40, 1.0)])
    second = ShardResult("torch", 1, "log_loss", [Trial(0, 1, {"hidden": 64}, 0.30, 1.0)])
    trials = collect([second.to_json(), first.to_json()])
    assert [t.shard for t in trials] == [0, 1]
    assert best_trial(trials, "log_loss").params == {"hidden": 64}  # lower is better for log loss
