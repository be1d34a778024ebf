"""What every training step does around its estimator: fit, log to a nested MLflow run, save the model."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from components.common import attest, decision, modeling, signing, tracking
from components.common.features import split_target
from components.common.profile import ReferenceProfile
from components.common.task import plain_label
from components.search.core import collect, shards_metric
from components.search.records import log_trials, log_winner
from components.search.refit import fixed_rounds, refit

# Candidate-run tag: "true" when the saved model was refitted on training + validation rows.
TAG_REFIT = "plinth.refit"


@dataclass(frozen=True)
class TrainedCandidate:
    """Where a trained candidate lives: its nested MLflow run and its logged model."""

    name: str
    run_id: str
    model_uri: str
    # The manifest digest of the logged files, carried to the register step through the pipeline.
    files_digest: str

    def to_json(self) -> str:
        """Serialise for a KFP string output."""
        return json.dumps(asdict(self))


# A fit that reads the training split itself (onto a Dask cluster, into torchrun's processes): given the
# unfitted model, the split's location and the profile, it returns the fitted model, the feature rows its
# signature is inferred from (a sample holding every distinct category will do) and the number of rows fitted.
Fit = Callable[[Any, str, ReferenceProfile], tuple[Any, pd.DataFrame, int]]


class CandidateError(ValueError):
    """A fitted candidate does not match the task it was trained for; the message says how."""


def loggable_params(model: modeling.Estimator) -> dict[str, str]:
    """Return the estimator's scalar hyper-parameters (nested estimators and objects are skipped)."""
    params = model.get_params() if hasattr(model, "get_params") else {}
    return {k: str(v) for k, v in params.items() if isinstance(v, str | int | float | bool) or v is None}


def load_profile_file(profile_path: str) -> ReferenceProfile:
    """Read the profile the validate step wrote (task, feature kinds, reference bins)."""
    with open(profile_path, encoding="utf-8") as handle:
        return ReferenceProfile.from_dict(json.load(handle))


def check_classes(model: Any, profile: ReferenceProfile) -> None:
    """Refuse a classifier whose probability columns are not the task's classes, in order."""
    if not profile.task.is_classification:
        return
    fitted = tuple(plain_label(label) for label in getattr(model, "classes_", ()))
    if fitted != profile.task.classes:
        raise CandidateError(
            f"the fitted model's classes {list(fitted)} differ from the task's {list(profile.task.classes)}: "
            "every class must occur in the training rows"
        )


def logged_files_digest(model_uri: str) -> str:
    """Return the manifest digest of a logged model's files, as a version made from them downloads them."""
    with tempfile.TemporaryDirectory(prefix="plinth-logged-") as tmp:
        location = tracking.model_files_location(model_uri)
        return signing.manifest_digest(Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=tmp)))


def train_candidate(
    name: str,
    make_model: Callable[..., modeling.Estimator],
    train_path: str,
    profile_path: str,
    tracking_uri: str,
    parent_run_id: str,
    model_path: str,
    device: str,
    prepare_for_saving: Callable[[Any], Any] | None = None,
    extra_packages: Sequence[str] = (),
    fit: Fit | None = None,
    searched: Sequence[str] = (),
    validation_path: str = "",
    decision_objective: str = decision.F1,
    refit_full: bool = True,
) -> TrainedCandidate:
    """Build the candidate for the profile's task and fit it on the training split, in a nested MLflow run.

    `make_model(profile, **params)` returns the unfitted model for the searched parameters (none: the fixed
    settings). `searched` are the search shards' results (components/search): their trials are logged as
    child runs of the candidate's run and the best one's parameters are fitted, on the training rows only:
    the validation rows stay unseen by that fit, so they can choose its decision threshold and calibration
    without bias. `validation_path` is the split's validation rows: with them, the fitted model is finalised
    (`decision.finalize`: calibrated when its validation ECE is high, a binary threshold chosen for
    `decision_objective`) and the decision is stored in its metadata. Then, with `refit_full`, the same
    settings are fitted again on training + validation rows with the rounds the first fit found
    (components/search/refit.py) and that model is saved, with the decision chosen before
    (`decision.carried`); the run's `plinth.refit` tag and `fit_rows` metric, and the decision's `refit` and
    `fit_rows`, say which model was saved. A distributed `fit` is not refitted.
    `prepare_for_saving` adapts the fitted model for serving (e.g. pins XGBoost to CPU inference);
    `extra_packages` are the model's framework packages beyond scikit-learn, pinned in its requirements;
    `fit` replaces reading the split into this process and fitting here (a distributed engine), and its
    `fit_seconds` then include the reading.
    """
    profile = load_profile_file(profile_path)
    trials, metric = collect(searched), shards_metric(searched)
    if fit is None:
        features, labels = split_target(pd.read_parquet(train_path), profile)
    client = tracking.connect(tracking_uri)
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    with mlflow.start_run(experiment_id=experiment_id, run_name=name, nested=True, parent_run_id=parent_run_id) as run:
        mlflow.set_tags(
            {
                tracking.TAG_KIND: "candidate",
                "plinth.candidate": name,
                "plinth.device": device,
                "plinth.task": profile.task.kind,
            }
        )
        params: Mapping[str, Any] = {}
        if trials:
            log_trials(name, run.info.run_id, trials, metric)
            params = log_winner(trials, metric)
        model = make_model(profile, **params)
        mlflow.log_params(loggable_params(model))
        started = time.perf_counter()
        if fit is None:
            model, n_rows = model.fit(features, labels), len(features)
        else:
            model, features, n_rows = fit(model, train_path, profile)
        fit_seconds = time.perf_counter() - started
        mlflow.log_metric("fit_seconds", fit_seconds)
        check_classes(model, profile)
        fitted = model
        if prepare_for_saving is not None:
            model = prepare_for_saving(model)
        decided, saved_rows, refitted = None, n_rows, False
        if validation_path:
            validation = split_target(pd.read_parquet(validation_path), profile)
            model, made = decision.finalize(model, *validation, profile, decision_objective)
            if refit_full and fit is None:
                rounds = fixed_rounds(fitted)
                started = time.perf_counter()
                again, features = refit(make_model(profile, **params), rounds, (features, labels), validation)
                mlflow.log_metric("refit_seconds", time.perf_counter() - started)
                check_classes(again, profile)
                model = decision.carried(model, again if prepare_for_saving is None else prepare_for_saving(again))
                saved_rows, refitted = len(features), True
                print(f"train {name}: refit on {saved_rows} training + validation rows with {rounds or 'its settings'}")
            decided = replace(made, refit=refitted, fit_rows=saved_rows).metadata()
        mlflow.set_tag(TAG_REFIT, str(refitted).lower())
        mlflow.log_metric("fit_rows", saved_rows)
        model_uri = modeling.log_model(model, features, profile, name, extra_packages, decision=decided)
        files_digest = logged_files_digest(model_uri)
        mlflow.set_tag(attest.TAG_FILES_DIGEST, files_digest)  # what the signer compares the files with
    modeling.save_model(model, model_path, features, profile, name, extra_packages, decision=decided)
    print(
        f"train {name}: {profile.task.describe()}; fitted on {n_rows} rows in {fit_seconds:.2f}s "
        f"on {device}; run {run.info.run_id}"
    )
    return TrainedCandidate(name, run.info.run_id, model_uri, files_digest)
