"""The search in MLflow: every trial a child run of the candidate's run, the winner's parameters on the candidate.

The shards return their trials instead of logging them (a shard runs before the candidate's run exists, and
needs no tracking server), so the training step logs them once it has opened the candidate's run: one
child run per trial with the trial's parameters, its validation score and its seconds, and on the candidate
run `plinth.search.best_<name>` for each of the winner's parameters, the winner's validation score and the
number of trials.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import mlflow
from mlflow.entities import Metric, Param
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from components.common import tracking
from components.search.core import Trial, best_trial

BEST_PREFIX = "plinth.search.best_"
TAG_TRIALS = "plinth.search.trials"
TAG_SHARD = "plinth.search.shard"


def log_trials(candidate: str, candidate_run_id: str, trials: Sequence[Trial], metric: str) -> None:
    """Log each trial as a finished child run of the candidate's run (params, validation score, seconds)."""
    client = mlflow.MlflowClient()
    experiment_id = client.get_run(candidate_run_id).info.experiment_id
    for trial in trials:
        name = f"{candidate} trial {trial.shard}.{trial.number}"
        tags = {
            MLFLOW_PARENT_RUN_ID: candidate_run_id,
            MLFLOW_RUN_NAME: name,
            tracking.TAG_KIND: "trial",
            "plinth.candidate": candidate,
            TAG_SHARD: str(trial.shard),
        }
        run = client.create_run(experiment_id, tags=tags, run_name=name)
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[
                Metric(f"validation_{metric}", trial.score, now, 0),
                Metric("trial_seconds", trial.seconds, now, 0),
            ],
            params=[Param(key, str(value)) for key, value in trial.params.items()],
        )
        client.set_terminated(run.info.run_id)


def log_winner(trials: Sequence[Trial], metric: str) -> Mapping[str, Any]:
    """Log the best trial's parameters and score on the active (candidate) run; return the parameters."""
    best = best_trial(trials, metric)
    mlflow.log_params({f"{BEST_PREFIX}{key}": str(value) for key, value in best.params.items()})
    mlflow.log_metric(f"search_validation_{metric}", best.score)
    mlflow.set_tag(TAG_TRIALS, str(len(trials)))
    return best.params
