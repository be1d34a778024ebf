"""The search driver: one seeded Optuna study (TPE) of a candidate family, scored on the validation rows.

A study is one shard of a family's search: on Kubeflow `search_parallelism` shards run at once, each an
independent study seeded `seed + shard`, and the training step keeps the best trial of all of them
(`best_trial`). No study database is shared, so no step holds database credentials; the shards' trials are
returned as the step's output and logged by the training step as MLflow child runs of the candidate's run.

Every trial fits on the training rows and is scored on the validation rows with the task's primary metric
(`components/evaluate/core.score`, the metric the gate compares); the test rows are never seen. Shard 0's
first trial is the family's fixed settings (the defaults of its `build_model`), so the winner scores at least
what the fixed settings score on the validation rows.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
import pandas as pd

from components.common.features import split_target
from components.common.modeling import predict_output
from components.common.profile import ReferenceProfile
from components.common.task import greater_is_better
from components.evaluate.core import score
from components.search import budget
from components.search.families import Build, builder
from components.search.spaces import SPACES, Space


@dataclass(frozen=True)
class Trial:
    """One finished trial: its parameters, its validation score and how long it took."""

    number: int
    shard: int
    params: dict[str, Any]
    score: float
    seconds: float


@dataclass(frozen=True)
class ShardResult:
    """What one shard of a family's search found: every finished trial, and the metric they were scored on."""

    family: str
    shard: int
    metric: str
    trials: list[Trial] = field(default_factory=list)

    def to_json(self) -> str:
        """Serialise for a KFP string output (collected from the ParallelFor by the training step)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ShardResult:
        """Rebuild a result written by `to_json`."""
        data = json.loads(text)
        return cls(data["family"], data["shard"], data["metric"], [Trial(**trial) for trial in data["trials"]])


def fixed_settings(build: Build) -> dict[str, Any]:
    """Return the keyword defaults of `build`: the family's fixed settings, which the first trial tries."""
    parameters = inspect.signature(build).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def shard_trials(total: int, shards: int, shard: int) -> int:
    """Return how many of a family's `total` trials shard `shard` of `shards` runs (the first ones take the rest)."""
    if shards < 1 or not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not one of {shards} shards")
    return total // shards + (1 if shard < total % shards else 0)


def run_study(
    family: str,
    build: Build,
    profile: ReferenceProfile,
    train: tuple[pd.DataFrame, pd.Series],
    validation: tuple[pd.DataFrame, pd.Series],
    metric: str,
    trials: int,
    seconds: float,
    seed: int,
    shard: int = 0,
    space: Space | None = None,
) -> ShardResult:
    """Run up to `trials` trials (stopping after `seconds`) of `family`'s space; return every finished trial.

    Args:
        family: The candidate's name; picks its space from `SPACES` unless `space` is given.
        build: Returns the unfitted model for the searched keyword parameters.
        profile: The validated profile (the task decides the space's class weights and the metric's sense).
        train: Features and labels the trials fit on.
        validation: Features and labels the trials are scored on.
        metric: The task's primary metric.
        trials: Most trials this shard runs; 0 runs none (the fixed settings are used).
        seconds: Wall-clock budget of the shard: no trial starts after it.
        seed: The pipeline's seed; this shard's sampler is seeded `seed + shard`.
        shard: This shard's number; shard 0 tries the fixed settings first.
        space: The space to search instead of the family's.
    """
    suggest = space or SPACES[family]
    result = ShardResult(family, shard, metric)
    if trials <= 0:
        return result
    direction = "maximize" if greater_is_better(metric) else "minimize"
    sampler = optuna.samplers.TPESampler(seed=seed + shard)
    study = optuna.create_study(direction=direction, sampler=sampler)
    if shard == 0:
        study.enqueue_trial(fixed_settings(build), skip_if_exists=True)

    def objective(trial: optuna.Trial) -> float:
        started = time.perf_counter()
        params = suggest(trial, profile)
        model = build(**params).fit(*train)
        value = score(profile.task, validation[1], predict_output(model, profile.task, validation[0]))[metric]
        result.trials.append(Trial(trial.number, shard, params, float(value), time.perf_counter() - started))
        return float(value)

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per shard below instead of one per trial
    study.optimize(objective, n_trials=trials, timeout=seconds)
    best = best_trial(result.trials, metric)
    print(
        f"search {family} shard {shard}: {len(result.trials)} trials, best {metric} {best.score:.4f} "
        f"(trial {best.number}) on the validation rows"
    )
    return result


def best_trial(trials: Sequence[Trial], metric: str) -> Trial:
    """Return the best trial by `metric`; the earliest (lowest shard, then number) among equals."""
    if not trials:
        raise ValueError("no trials to choose from")
    sign = 1.0 if greater_is_better(metric) else -1.0
    return max(trials, key=lambda trial: (sign * trial.score, -trial.shard, -trial.number))


def collect(results: Sequence[str]) -> list[Trial]:
    """Return the trials of every shard's JSON result, shard by shard."""
    shards = sorted((ShardResult.from_json(text) for text in results), key=lambda result: result.shard)
    return [trial for result in shards for trial in result.trials]


def shards_metric(results: Sequence[str]) -> str:
    """Return the metric the shards scored their trials on ("" without shards)."""
    return ShardResult.from_json(results[0]).metric if results else ""


def run(
    family: str,
    train_path: str,
    validation_path: str,
    profile_path: str,
    seed: int,
    shard: int,
    shards: int,
    trials: int,
    seconds: float,
    primary_metric: str,
    device: str,
    time_budget_s: float,
    max_passes: int,
) -> str:
    """Step entry: run this shard's share of `family`'s `trials` on the split's rows; return its result as JSON."""
    from components.common.candidate import load_profile_file

    if trials < 0 or seconds <= 0:
        raise ValueError(f"search_trials must be >= 0 and search_time_s > 0, got {trials} and {seconds}")
    profile = load_profile_file(profile_path)
    metric = profile.task.primary_metric(primary_metric)
    mine = shard_trials(trials, shards, shard)
    if mine == 0:
        return ShardResult(family, shard, metric).to_json()
    stratify = profile.task.is_classification
    every = split_target(pd.read_parquet(train_path), profile)
    train = budget.within(every, budget.TRIAL_ROWS, seed, stratify)
    validation = budget.within(
        split_target(pd.read_parquet(validation_path), profile), budget.SCORE_ROWS, seed, stratify
    )
    print(f"search {family}: {budget.describe(len(train[0]), len(every[0]))}, scored on {len(validation[0]):,}")
    del every
    build = builder(family, profile, seed, device, time_budget_s, max_passes, trial=True)
    return run_study(family, build, profile, train, validation, metric, mine, seconds, seed, shard).to_json()
