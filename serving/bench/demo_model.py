"""Register the models of the serving benchmark and tests: plinth's way, and the way a notebook does it.

`register_plinth_model` fits the scikit-learn candidate on a whole dataset and registers it as the
pipeline does (MLmodel metadata with the task and reference profile, the `plinth.task` tag): the service's
fast path. `register_plain_sklearn` logs a fitted estimator with nothing but `mlflow.sklearn.log_model`,
a signature and an input example, as a data scientist would from a notebook: the service's pyfunc path.
Registering the same estimator both ways measures what the pyfunc path costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from mlflow.pyfunc.model import PythonModel

from components.common import modeling, tracking
from components.common.candidate import logged_files_digest
from components.common.features import split_target
from components.common.profile import ReferenceProfile, build_profile
from components.common.task import TAG_TASK, Task, infer_task
from components.ingest.core import load_source
from components.register.core import choose_key, register
from components.train_sklearn.core import build_model
from serving.embedded.train_drill import BREAST_CANCER, DrillData
from serving.rollout.edges.sample_rows import json_value

Instance = dict[str, Any]


@dataclass(frozen=True)
class RegisteredModel:
    """A registered version and the in-process model, typed features and task it was fitted with."""

    tracking_uri: str
    name: str
    version: str
    model: Any
    features: pd.DataFrame
    task: Task
    profile: ReferenceProfile | None = None

    def instances(self, start: int = 0, count: int | None = None) -> list[Instance]:
        """Return feature rows as /predict instances (JSON values, missing as null)."""
        rows = self.features.iloc[start : None if count is None else start + count]
        return [{str(k): json_value(v) for k, v in row.items()} for row in rows.to_dict(orient="records")]

    def expected(self, start: int = 0, count: int | None = None) -> np.ndarray:
        """Return the in-process model's output for the same rows: probabilities or values."""
        rows = self.features.iloc[start : None if count is None else start + count]
        return modeling.predict_output(self.model, self.task, rows)


def register_plinth_model(
    tracking_uri: str, name: str, data: DrillData = BREAST_CANCER, experiment: str = "serving"
) -> RegisteredModel:
    """Fit the scikit-learn candidate on the whole dataset, log it plinth's way, register it as champion."""
    frame = load_source(data.source)
    task = infer_task(frame[data.target], data.task)
    profile = build_profile(frame, data.target, task)
    features, labels = split_target(frame, profile)
    model = build_model(profile, seed=0).fit(features, labels)
    client = tracking.connect(tracking_uri)
    experiment_id = tracking.ensure_experiment(client, experiment, tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id):
        model_uri = modeling.log_model(model, features, profile, "sklearn")
    tags = {TAG_TASK: task.tag()}
    key = choose_key(tracking_uri)
    digest = logged_files_digest(model_uri)
    registration = register(client, model_uri, name, tracking.CHAMPION, tags, "serving model", key, digest)
    return RegisteredModel(tracking_uri, name, registration.version, model, features, task, profile)


def register_plain_sklearn(
    tracking_uri: str, name: str, model: Any, features: pd.DataFrame, task: Task, experiment: str = "serving"
) -> RegisteredModel:
    """Log a fitted estimator with plain `mlflow.sklearn.log_model` (signature, input example, nothing else)."""
    client = tracking.connect(tracking_uri)
    experiment_id = tracking.ensure_experiment(client, experiment, tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(features, model.predict(features.head(20))),
            input_example=features.head(3),
            pip_requirements=modeling.pip_requirements(()),
            # A pickle, as a notebook makes it: MLflow's default (skops) refuses plinth's preprocessing step.
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        )
    key = choose_key(tracking_uri)
    digest = logged_files_digest(str(info.model_uri))
    registration = register(
        client, str(info.model_uri), name, tracking.CHAMPION, {}, "plain sklearn model", key, digest
    )
    return RegisteredModel(tracking_uri, name, registration.version, model, features, task)


class SupportRule(PythonModel):
    """A hand-written churn rule as a pyfunc model: "yes" from four support calls on, labels only."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        """Return one label per row."""
        return np.where(model_input["support_calls"].to_numpy() >= 4, "yes", "no")


def register_python_model(tracking_uri: str, name: str, features: pd.DataFrame, task: Task) -> RegisteredModel:
    """Log `SupportRule` with `mlflow.pyfunc.log_model` (signature, input example) and tag its task."""
    rule = SupportRule()
    client = tracking.connect(tracking_uri)
    experiment_id = tracking.ensure_experiment(client, "serving", tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=rule,
            signature=infer_signature(features, rule.predict(None, features.head(20))),
            input_example=features.head(3),
            pip_requirements=modeling.pip_requirements(()),
        )
    tags = {TAG_TASK: task.tag()}
    key = choose_key(tracking_uri)
    digest = logged_files_digest(str(info.model_uri))
    registration = register(client, str(info.model_uri), name, tracking.CHAMPION, tags, "a rule", key, digest)
    return RegisteredModel(tracking_uri, name, registration.version, rule, features, task)
