"""How plinth stores a model: one format for every candidate, so serving has one load path.

Every candidate (scikit-learn, XGBoost, PyTorch) is one scikit-learn style estimator that takes the raw
feature columns (preprocessing included, `features.py`), saved with MLflow's sklearn flavor. Classifiers
answer `predict_proba` with one column per class of the task; regressors answer `predict`. The task and
the reference profile ride in the MLmodel metadata under `plinth`, so whoever loads the model also gets
what problem it solves and what its inputs should look like.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, Protocol

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import Model, ModelSignature, infer_signature
from mlflow.types.schema import ColSpec, Schema

from components.common.profile import ReferenceProfile
from components.common.task import Task
from components.common.tracking import integer_columns_checked

METADATA_KEY = "plinth"
MODEL_ARTIFACT_NAME = "model"
INPUT_EXAMPLE_ROWS = 3
# What loading any plinth model needs; candidates add their framework (xgboost, torch).
BASE_PACKAGES = ("mlflow", "scikit-learn", "cloudpickle", "numpy", "pandas")


class Estimator(Protocol):
    """What every candidate offers once fitted; classifiers also offer `predict_proba`."""

    def fit(self, features: pd.DataFrame, labels: pd.Series) -> Any:
        """Fit on a feature frame and a target series."""

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Return one prediction (a class label, or a value) per row."""


def predict_output(model: Any, task: Task, features: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Return what a model of `task` answers: (n, classes) probabilities, or (n,) predicted values."""
    if task.is_classification:
        return np.asarray(model.predict_proba(features), dtype=np.float64)
    return np.asarray(model.predict(features), dtype=np.float64).reshape(-1)


def model_metadata(profile: ReferenceProfile, candidate: str) -> dict[str, Any]:
    """Return the MLmodel metadata block that plinth's serving layer reads."""
    return {
        METADATA_KEY: {
            "candidate": candidate,
            "target": profile.target,
            "task": profile.task.to_dict(),
            "feature_names": profile.feature_names,
            "reference_profile": profile.to_dict(),
        }
    }


def signature(model: Any, features: pd.DataFrame, profile: ReferenceProfile) -> ModelSignature:
    """Return the model signature: each input's type, optional exactly where the reference had missing values.

    Inferred from all training rows, not only the input example, so a type is never guessed from three
    rows; `required` follows the profile, which saw the whole validated dataset.
    """
    output = predict_output(model, profile.task, features.head(INPUT_EXAMPLE_ROWS))
    with integer_columns_checked():
        inferred = infer_signature(features, output)
    assert inferred.inputs is not None
    inputs = Schema(
        [
            ColSpec(spec.type, spec.name, required=not profile.features[str(spec.name)].optional)
            for spec in inferred.inputs.inputs
        ]
    )
    return ModelSignature(inputs=inputs, outputs=inferred.outputs)


def pip_requirements(extra_packages: Sequence[str]) -> list[str]:
    """Pin what loading the model needs, from this environment.

    Given explicitly because MLflow would otherwise infer them by loading the model in a subprocess,
    which costs seconds per save.
    """
    packages = [*BASE_PACKAGES, *extra_packages]
    return [f"{package}=={version(package)}" for package in packages]


def _flavor_kwargs(
    model: Estimator,
    sample: pd.DataFrame,
    profile: ReferenceProfile,
    candidate: str,
    extra_packages: Sequence[str],
) -> dict[str, Any]:
    """Arguments shared by saving and logging: signature, input example, metadata, serialization."""
    return {
        "pip_requirements": pip_requirements(extra_packages),
        "signature": signature(model, sample, profile),
        "input_example": sample.head(INPUT_EXAMPLE_ROWS),
        "metadata": model_metadata(profile, candidate),
        "serialization_format": mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
    }


def save_model(
    model: Estimator,
    path: str,
    sample: pd.DataFrame,
    profile: ReferenceProfile,
    candidate: str,
    extra_packages: Sequence[str] = (),
) -> None:
    """Save a fitted model as an MLflow sklearn-flavor directory at `path`."""
    mlflow.sklearn.save_model(model, path, **_flavor_kwargs(model, sample, profile, candidate, extra_packages))


def log_model(
    model: Estimator,
    sample: pd.DataFrame,
    profile: ReferenceProfile,
    candidate: str,
    extra_packages: Sequence[str] = (),
) -> str:
    """Log a fitted model to the active MLflow run and return its model URI."""
    info = mlflow.sklearn.log_model(
        model, name=MODEL_ARTIFACT_NAME, **_flavor_kwargs(model, sample, profile, candidate, extra_packages)
    )
    return str(info.model_uri)


def load_model(uri_or_path: str) -> Any:
    """Load a model saved by `save_model` or `log_model` (local path or any MLflow model URI)."""
    return mlflow.sklearn.load_model(uri_or_path)


def profile_from_metadata(metadata: dict[str, Any] | None, where: str) -> ReferenceProfile:
    """Return the reference profile of an MLmodel metadata block.

    Raises:
        ValueError: the block is not a plinth model's.
    """
    if not metadata or METADATA_KEY not in metadata:
        raise ValueError(f"{where} is not a plinth model: MLmodel metadata has no '{METADATA_KEY}' block")
    return ReferenceProfile.from_dict(metadata[METADATA_KEY]["reference_profile"])


def load_profile(model_dir: str | Path) -> ReferenceProfile:
    """Read the reference profile from a downloaded model directory's MLmodel metadata."""
    return profile_from_metadata(Model.load(str(Path(model_dir) / "MLmodel")).metadata, str(model_dir))
