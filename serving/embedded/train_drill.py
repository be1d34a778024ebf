"""Drill models: register a small scikit-learn model straight into the registry, bypassing the gate.

Tests, the demo and the benchmarks need a champion, a better challenger and a bad one in seconds, for any
dataset and task. The bad one (fitted on shuffled targets) answers 200 OK with nonsense, which is exactly
what the prediction-divergence check is for; the pipeline's gate would never let it through, hence "drill".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from components.common.features import split_target
from components.common.modeling import log_model
from components.common.profile import build_profile
from components.common.task import AUTO, TAG_TASK, infer_task
from components.common.tracking import connect, ensure_experiment
from components.ingest.core import load_source
from components.train_sklearn.core import build_model
from serving.rollout.edges.sample_rows import records

EXPERIMENT = "plinth-rollout-drills"
HOLDOUT_SHARE = 0.3


@dataclass(frozen=True)
class DrillData:
    """The dataset a drill trains on: a `load_source` name and its target column."""

    source: str = "sklearn:breast_cancer"
    target: str = "target"
    task: str = AUTO


BREAST_CANCER = DrillData()


def split_dataset(seed: int, data: DrillData = BREAST_CANCER) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (train, held-out) frames of the dataset, split reproducibly."""
    frame = load_source(data.source)
    held_out = frame.sample(frac=HOLDOUT_SHARE, random_state=seed)
    return frame.drop(held_out.index), held_out


def held_out_instances(seed: int, data: DrillData = BREAST_CANCER) -> list[dict[str, Any]]:
    """Return held-out feature rows as /predict instances (synthetic traffic for demos and drills)."""
    return records(split_dataset(seed, data)[1].drop(columns=[data.target]))


def register_drill_model(
    tracking_uri: str,
    model_name: str,
    *,
    seed: int,
    data: DrillData = BREAST_CANCER,
    train_fraction: float = 1.0,
    shuffle_labels: bool = False,
    alias: str | None = None,
) -> str:
    """Fit, log and register one model; return its version (and point `alias` at it when given)."""
    client = connect(tracking_uri)
    train, _ = split_dataset(seed, data)
    train = train.sample(frac=train_fraction, random_state=seed)
    task = infer_task(train[data.target], data.task)
    if shuffle_labels:
        shuffled = np.random.default_rng(seed).permutation(train[data.target].to_numpy())
        train = train.assign(**{data.target: shuffled})
    profile = build_profile(train, data.target, task)
    features, labels = split_target(train, profile)
    model = build_model(profile, seed).fit(features, labels)
    experiment_id = ensure_experiment(client, EXPERIMENT, tracking_uri)
    kind = "garbage (shuffled labels)" if shuffle_labels else f"train fraction {train_fraction:g}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"drill {kind}"):
        # As the pipeline's ingest step does: a rollout's default traffic reads rows of this data.
        mlflow.log_params({"source": data.source, "target": data.target})
        uri = log_model(model, features, profile, "sklearn")
    version = str(mlflow.register_model(uri, model_name).version)
    client.set_model_version_tag(model_name, version, "plinth.drill", kind)
    client.set_model_version_tag(model_name, version, TAG_TASK, task.tag())
    if alias:
        client.set_registered_model_alias(model_name, alias, version)
    return version


def register_plain_model(
    tracking_uri: str,
    model_name: str,
    *,
    seed: int,
    learner: str = "forest",
    alias: str | None = None,
    input_example: bool = True,
) -> str:
    """Register a breast-cancer classifier the way a data scientist does from a notebook; return its version.

    Plain `mlflow.sklearn.log_model` with an inferred signature and (optionally) an input example: no plinth
    metadata, no reference profile, no task tag, no recorded training data. `learner` is "forest"
    (RandomForest) or "logistic" (scaled LogisticRegression). What every registered model offers is all the
    rollout may rely on for these.
    """
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    client = connect(tracking_uri)
    train, _ = split_dataset(seed)
    features, labels = train.drop(columns=[BREAST_CANCER.target]), train[BREAST_CANCER.target]
    model = (
        RandomForestClassifier(n_estimators=50, random_state=seed)
        if learner == "forest"
        else make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    ).fit(features, labels)
    experiment_id = ensure_experiment(client, EXPERIMENT, tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"notebook {learner}"):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(features, model.predict(features)),
            input_example=features.head(5) if input_example else None,
            # Given, not inferred: MLflow would load the model in a subprocess to find them (seconds).
            pip_requirements=["mlflow", "scikit-learn", "pandas"],
            # MLflow's default (skops) format refuses tree models unless their node storage is trusted.
            skops_trusted_types=["sklearn.tree._tree.Tree"] if learner == "forest" else None,
        )
    version = str(mlflow.register_model(info.model_uri, model_name).version)
    if alias:
        client.set_registered_model_alias(model_name, alias, version)
    return version
