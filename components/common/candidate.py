"""What every training step does around its estimator: fit, log to a nested MLflow run, save the model."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
import pandas as pd

from components.common import modeling, tracking
from components.common.profile import ReferenceProfile


@dataclass(frozen=True)
class TrainedCandidate:
    """Where a trained candidate lives: its nested MLflow run and its logged model."""

    name: str
    run_id: str
    model_uri: str

    def to_json(self) -> str:
        """Serialise for a KFP string output."""
        return json.dumps(asdict(self))


def loggable_params(model: modeling.Classifier) -> dict[str, str]:
    """Return the estimator's scalar hyper-parameters (nested estimators and objects are skipped)."""
    params = model.get_params() if hasattr(model, "get_params") else {}
    return {k: str(v) for k, v in params.items() if isinstance(v, str | int | float | bool) or v is None}


def train_candidate(
    name: str,
    model: modeling.Classifier,
    train_path: str,
    profile_path: str,
    target: str,
    tracking_uri: str,
    parent_run_id: str,
    model_path: str,
    device: str,
    prepare_for_saving: Callable[[Any], Any] | None = None,
    extra_packages: Sequence[str] = (),
) -> TrainedCandidate:
    """Fit `model` on the training split inside a run nested under the pipeline's parent run.

    `prepare_for_saving` adapts the fitted model for serving (e.g. pins XGBoost to CPU inference);
    `extra_packages` are the model's framework packages beyond scikit-learn, pinned in its requirements.
    """
    features, labels = modeling.split_features(pd.read_parquet(train_path), target)
    with open(profile_path, encoding="utf-8") as handle:
        profile = ReferenceProfile.from_dict(json.load(handle))
    client = tracking.connect(tracking_uri)
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    with mlflow.start_run(experiment_id=experiment_id, run_name=name, nested=True, parent_run_id=parent_run_id) as run:
        mlflow.set_tags({tracking.TAG_KIND: "candidate", "plinth.candidate": name, "plinth.device": device})
        mlflow.log_params(loggable_params(model))
        started = time.perf_counter()
        model.fit(features, labels)
        fit_seconds = time.perf_counter() - started
        mlflow.log_metric("fit_seconds", fit_seconds)
        if prepare_for_saving is not None:
            model = prepare_for_saving(model)
        model_uri = modeling.log_model(model, features, profile, name, extra_packages)
    modeling.save_model(model, model_path, features, profile, name, extra_packages)
    print(f"train {name}: fitted on {len(features)} rows in {fit_seconds:.2f}s on {device}; run {run.info.run_id}")
    return TrainedCandidate(name, run.info.run_id, model_uri)
