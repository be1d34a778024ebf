"""Register the models of the serving benchmark and tests: plinth's way, and the way a notebook does it.

`register_plinth_model` fits the scikit-learn candidate on a whole dataset and registers it as the
pipeline does (MLmodel metadata with the task and reference profile, the `plinth.task` tag): the service's
fast path. `register_plain_sklearn` logs a fitted estimator with nothing but `mlflow.sklearn.log_model`,
a signature and an input example, as a data scientist would from a notebook: the service's pyfunc path.
Registering the same estimator both ways measures what the pyfunc path costs.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from mlflow.pyfunc.model import PythonModel

from components.common import attest, modeling, signing, tracking
from components.common.candidate import logged_files_digest
from components.common.features import split_target
from components.common.profile import ReferenceProfile, build_profile
from components.common.task import TAG_TASK, Task, infer_task
from components.ingest.core import load_source
from components.register.core import choose_signer, register
from components.train_sklearn.core import as_saved, build_model
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


def log_as_gate_winner(client: mlflow.MlflowClient, experiment_id: str, log: Any) -> str:
    """Log a model (`log()` returns its URI) as the gate's winner of a fresh pipeline run: what the signer checks."""
    parent = client.create_run(experiment_id).info.run_id
    with mlflow.start_run(experiment_id=experiment_id, nested=True, parent_run_id=parent) as run:
        model_uri = str(log())
        mlflow.set_tag(attest.TAG_FILES_DIGEST, logged_files_digest(model_uri))
    client.set_tag(parent, tracking.TAG_DECISION, "passed")
    client.set_tag(parent, tracking.TAG_REASON, "registered by serving/bench/demo_model.py")
    client.set_tag(parent, attest.TAG_WINNER_RUN, run.info.run_id)
    return model_uri


def register_plinth_model(
    tracking_uri: str, name: str, data: DrillData = BREAST_CANCER, experiment: str = "serving"
) -> RegisteredModel:
    """Fit the scikit-learn candidate on the whole dataset, log it plinth's way, register it as champion."""
    frame = load_source(data.source)
    task = infer_task(frame[data.target], data.task)
    profile = build_profile(frame, data.target, task)
    features, labels = split_target(frame, profile)
    model = as_saved(build_model(profile, seed=0).fit(features, labels))
    client = tracking.connect(tracking_uri)
    experiment_id = tracking.ensure_experiment(client, experiment, tracking_uri)
    model_uri = log_as_gate_winner(
        client, experiment_id, lambda: modeling.log_model(model, features, profile, "sklearn")
    )
    tags = {TAG_TASK: task.tag()}
    signer = choose_signer(client, tracking_uri)
    registration = register(client, model_uri, name, tracking.CHAMPION, tags, "serving model", signer)
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
    version = register_as_notebook(client, str(info.model_uri), name, {}, "plain sklearn model")
    return RegisteredModel(tracking_uri, name, version, model, features, task)


def register_as_notebook(
    client: mlflow.MlflowClient, model_uri: str, name: str, tags: dict[str, str], description: str
) -> str:
    """Register a model as a notebook does, unsigned, and point `champion` at it.

    The signer signs plinth's own models only (skops files, plinth's loader; components/common/attest.py).
    """
    version = str(mlflow.register_model(model_uri, name, tags=tags).version)
    client.update_model_version(name, version, description=description)
    client.set_registered_model_alias(name, tracking.CHAMPION, version)
    return version


def register_unsigned_copy(tracking_uri: str, name: str, version: str, as_name: str) -> str:
    """Register a version's files again as a version of `as_name`, as any other tool would: no signature at all.

    `model.sig` and the statement are left out (signed files registered as another version fail their check).
    """
    client = tracking.connect(tracking_uri)
    found = client.get_model_version(name, version)
    with tempfile.TemporaryDirectory(prefix="plinth-unsigned-") as tmp:
        uri = client.get_model_version_download_uri(name, version)
        files = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        for signed in (signing.SIGNATURE_FILE, signing.STATEMENT_FILE):
            (files / signed).unlink(missing_ok=True)
        with mlflow.start_run(experiment_id=client.get_run(str(found.run_id)).info.experiment_id) as run:
            mlflow.log_artifacts(str(files), "model")
            source = mlflow.get_artifact_uri("model")
    if not client.search_registered_models(filter_string=f"name = '{as_name}'"):
        client.create_registered_model(as_name)
    return str(client.create_model_version(as_name, source, run_id=run.info.run_id).version)


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
    version = register_as_notebook(client, str(info.model_uri), name, {TAG_TASK: task.tag()}, "a rule")
    return RegisteredModel(tracking_uri, name, version, rule, features, task)
