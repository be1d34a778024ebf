"""A searched candidate through train_candidate, against MLflow on SQLite: trials as child runs of the
candidate's run, the winner's parameters on it and in the fitted model; no trials trains the fixed settings."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import Model

from components.common import modeling, tracking
from components.common.candidate import TAG_REFIT, train_candidate
from components.common.decision import decision_of, finalize
from components.common.features import split_target
from components.search.core import ShardResult, run_study
from components.search.families import builder
from components.search.records import BEST_PREFIX, TAG_TRIALS
from components.split.core import carve_validation
from components.train_sklearn.core import as_saved


@pytest.fixture(scope="module")
def workspace(tables, tmp_path_factory) -> dict[str, str]:
    """The binary table's training rows split into train and validation files, its profile, an MLflow store."""
    root = tmp_path_factory.mktemp("search")
    table = tables["binary"]
    frame = table.x_train.assign(target=table.y_train)
    train, validation = carve_validation(frame, "target", 0.2, seed=0)
    paths = {name: str(root / f"{name}.parquet") for name in ("train", "validation")}
    train.to_parquet(paths["train"], index=False)
    validation.to_parquet(paths["validation"], index=False)
    paths["profile"] = str(root / "profile.json")
    Path(paths["profile"]).write_text(json.dumps(table.profile.to_dict()))
    paths["uri"] = f"sqlite:///{root / 'mlflow.db'}"
    paths["artifacts"] = str(root / "artifacts")  # never MLflow's default ./mlruns in the working directory
    return paths


def train(workspace: dict[str, str], searched: list[str], tmp_path: Path, refit_full: bool = True):
    client = tracking.connect(workspace["uri"])
    experiment = client.get_experiment_by_name("search") or client.get_experiment(
        client.create_experiment("search", artifact_location=workspace["artifacts"])
    )
    parent = client.create_run(experiment.experiment_id).info.run_id

    def make(profile, **params):
        return builder("sklearn", profile, seed=0, device="cpu", time_budget_s=60)(**params)

    trained = train_candidate(
        "sklearn",
        make,
        workspace["train"],
        workspace["profile"],
        workspace["uri"],
        parent,
        str(tmp_path / "model"),
        "cpu",
        searched=searched,
        validation_path=workspace["validation"],
        refit_full=refit_full,
    )
    return client, trained


def test_trials_are_child_runs_of_the_candidate_and_the_winner_is_fitted(workspace, tables, tmp_path):
    profile = tables["binary"].profile
    rows = {name: split_target(pd.read_parquet(workspace[name]), profile) for name in ("train", "validation")}
    build = builder("sklearn", profile, seed=0, device="cpu", time_budget_s=60)
    shards = [
        run_study("sklearn", build, profile, rows["train"], rows["validation"], "log_loss", 2, 60, seed=0, shard=shard)
        for shard in (0, 1)
    ]
    client, trained = train(workspace, [shard.to_json() for shard in shards], tmp_path)
    candidate = client.get_run(trained.run_id)
    trials = client.search_runs([candidate.info.experiment_id], f"tags.mlflow.parentRunId = '{trained.run_id}'")
    assert len(trials) == 4
    for run in trials:
        assert run.data.tags[tracking.TAG_KIND] == "trial"
        assert {"c", "class_weight"} <= set(run.data.params)
        assert "validation_log_loss" in run.data.metrics
    best = min(trials, key=lambda run: run.data.metrics["validation_log_loss"])
    assert candidate.data.params[f"{BEST_PREFIX}c"] == best.data.params["c"]
    assert candidate.data.metrics["search_validation_log_loss"] == best.data.metrics["validation_log_loss"]
    assert candidate.data.tags[TAG_TRIALS] == "4"
    learner = modeling.load_model(str(tmp_path / "model")).steps[-1][1]
    assert repr(learner.C) == best.data.params["c"]  # the winner, refitted
    assert candidate.data.params["learn__C"] == best.data.params["c"]


def test_no_trials_trains_the_fixed_settings_with_no_child_runs(workspace, tmp_path):
    client, trained = train(workspace, [ShardResult("sklearn", 0, "roc_auc").to_json()], tmp_path)
    candidate = client.get_run(trained.run_id)
    assert not client.search_runs([candidate.info.experiment_id], f"tags.mlflow.parentRunId = '{trained.run_id}'")
    assert not [key for key in candidate.data.params if key.startswith(BEST_PREFIX)]
    learner = modeling.load_model(str(tmp_path / "model")).steps[-1][1]
    assert (learner.C, learner.class_weight) == (1.0, None)  # build_model's defaults, as before the search
    assert mlflow.active_run() is None


def test_the_saved_model_is_refit_on_train_and_validation_rows_with_the_validation_threshold(
    workspace, tables, tmp_path
):
    profile = tables["binary"].profile
    (x_train, y_train), (x_val, y_val) = (
        split_target(pd.read_parquet(workspace[name]), profile) for name in ("train", "validation")
    )
    no_shards = [ShardResult("sklearn", 0, "roc_auc").to_json()]
    saved = {}
    for refit_full in (False, True):
        client, trained = train(workspace, no_shards, tmp_path / str(refit_full), refit_full)
        path = str(tmp_path / str(refit_full) / "model")
        run = client.get_run(trained.run_id)
        saved[refit_full] = (modeling.load_model(path), decision_of(Model.load(f"{path}/MLmodel").metadata), run)
    first, first_decision, first_run = saved[False]
    again, decision, run = saved[True]
    assert first_decision is not None
    assert decision is not None
    assert (first_decision.refit, first_decision.fit_rows) == (False, len(x_train))
    assert (decision.refit, decision.fit_rows) == (True, len(x_train) + len(x_val))
    assert (first_run.data.tags[TAG_REFIT], run.data.tags[TAG_REFIT]) == ("false", "true")
    assert run.data.metrics["fit_rows"] == len(x_train) + len(x_val)
    assert "refit_seconds" in run.data.metrics
    # The refit learner saw every row: its scaler counted them, and its coefficients moved.
    assert again[0].transformers_[0][1][-1].n_samples_seen_ == len(x_train) + len(x_val)
    assert not np.allclose(again[-1].coef_, first[-1].coef_)
    # The threshold is the one the 64 % fit chose on the validation rows, kept for the refit model.
    _, chosen = finalize(
        as_saved(builder("sklearn", profile, 0, "cpu", 60)().fit(x_train, y_train)), x_val, y_val, profile
    )
    assert decision.threshold == first_decision.threshold == chosen.threshold is not None
    assert decision.calibration == first_decision.calibration == chosen.calibration
