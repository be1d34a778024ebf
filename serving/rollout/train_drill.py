"""Drill models: register a small scikit-learn model straight into the registry, bypassing the gate.

Tests and the demo need a champion, a better challenger and a bad one in seconds. The bad one (fitted
on shuffled labels) answers 200 OK with nonsense, which is exactly what the prediction-divergence check is
for; the pipeline's gate would never let it through, hence "drill".
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd

from components.common.modeling import log_model, split_features
from components.common.profile import build_profile
from components.common.tracking import connect, ensure_experiment
from components.ingest.core import load_source
from components.train_sklearn.core import build_model

SOURCE = "sklearn:breast_cancer"
TARGET = "target"
EXPERIMENT = "plinth-rollout-drills"
HOLDOUT_SHARE = 0.3


def split_dataset(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (train, held-out) frames of the packaged dataset, split reproducibly."""
    frame = load_source(SOURCE)
    held_out = frame.sample(frac=HOLDOUT_SHARE, random_state=seed)
    return frame.drop(held_out.index), held_out


def held_out_instances(seed: int) -> list[dict[str, float]]:
    """Return held-out feature rows as /predict instances (the demo's synthetic traffic)."""
    features, _ = split_features(split_dataset(seed)[1], TARGET)
    return [{str(k): float(v) for k, v in row.items()} for row in features.to_dict(orient="records")]


def register_drill_model(
    tracking_uri: str,
    model_name: str,
    *,
    seed: int,
    train_fraction: float = 1.0,
    shuffle_labels: bool = False,
    alias: str | None = None,
) -> str:
    """Fit, log and register one model; return its version (and point `alias` at it when given)."""
    client = connect(tracking_uri)
    train, _ = split_dataset(seed)
    train = train.sample(frac=train_fraction, random_state=seed)
    features, labels = split_features(train, TARGET)
    if shuffle_labels:
        labels = pd.Series(np.random.default_rng(seed).permutation(labels.to_numpy()), index=labels.index)
    model = build_model(seed).fit(features, labels)
    experiment_id = ensure_experiment(client, EXPERIMENT, tracking_uri)
    kind = "garbage (shuffled labels)" if shuffle_labels else f"train fraction {train_fraction:g}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"drill {kind}"):
        uri = log_model(model, features, build_profile(train, TARGET), "sklearn")
    version = str(mlflow.register_model(uri, model_name).version)
    client.set_model_version_tag(model_name, version, "plinth.drill", kind)
    if alias:
        client.set_registered_model_alias(model_name, alias, version)
    return version
