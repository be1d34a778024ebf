"""Register the reference model of the serving benchmark and tests, the way the training pipeline does."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from components.common import modeling, profile, tracking
from components.common.tracking import CHAMPION
from components.ingest.core import load_source
from components.register.core import register
from components.train_sklearn.core import build_model

DATASET = "sklearn:breast_cancer"
TARGET = "target"


@dataclass(frozen=True)
class RegisteredModel:
    """A registered version and the in-process model and data it was fitted on."""

    tracking_uri: str
    name: str
    version: str
    model: modeling.Classifier
    features: pd.DataFrame


def register_logistic_regression(tracking_uri: str, name: str, experiment: str = "serving") -> RegisteredModel:
    """Fit StandardScaler + LogisticRegression on breast cancer, log, register, and alias it champion."""
    import mlflow

    frame = load_source(DATASET)
    features, labels = modeling.split_features(frame, TARGET)
    model = build_model(seed=0).fit(features, labels)
    client = tracking.connect(tracking_uri)
    experiment_id = tracking.ensure_experiment(client, experiment, tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id):
        model_uri = modeling.log_model(model, features, profile.build_profile(frame, TARGET), "sklearn")
    registration = register(client, model_uri, name, CHAMPION, {}, "serving reference model")
    return RegisteredModel(tracking_uri, name, registration.version, model, features)
