"""How plinth stores a model: one format for every candidate, so serving has one load path.

Every candidate (scikit-learn, XGBoost, PyTorch) is a scikit-learn style estimator with `predict_proba`,
saved with MLflow's sklearn flavor. The reference profile rides in the MLmodel metadata under
`plinth.reference_profile`, so whoever loads the model also gets what its inputs should look like.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, Protocol

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import Model, infer_signature

from components.common.profile import ReferenceProfile

METADATA_KEY = "plinth"
MODEL_ARTIFACT_NAME = "model"
INPUT_EXAMPLE_ROWS = 3
# What loading any plinth model needs; candidates add their framework (xgboost, torch).
BASE_PACKAGES = ("mlflow", "scikit-learn", "cloudpickle", "numpy", "pandas")


class Classifier(Protocol):
    """What every candidate offers once fitted."""

    def fit(self, features: pd.DataFrame, labels: pd.Series) -> Any:
        """Fit on a feature frame and a label series."""

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Return an (n, n_classes) array of class probabilities."""


def split_features(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.Series]:
    """Split a dataset into the float feature frame and the label series."""
    return frame.drop(columns=[target]).astype("float64"), frame[target]


def model_metadata(profile: ReferenceProfile, candidate: str) -> dict[str, Any]:
    """Return the MLmodel metadata block that plinth's serving layer reads."""
    return {
        METADATA_KEY: {
            "candidate": candidate,
            "target": profile.target,
            "feature_names": profile.feature_names,
            "reference_profile": profile.to_dict(),
        }
    }


def pip_requirements(extra_packages: Sequence[str]) -> list[str]:
    """Pin what loading the model needs, from this environment.

    Given explicitly because MLflow would otherwise infer them by loading the model in a subprocess,
    which costs seconds per save.
    """
    packages = [*BASE_PACKAGES, *extra_packages]
    return [f"{package}=={version(package)}" for package in packages]


def _flavor_kwargs(
    model: Classifier,
    sample: pd.DataFrame,
    profile: ReferenceProfile,
    candidate: str,
    extra_packages: Sequence[str],
) -> dict[str, Any]:
    """Arguments shared by saving and logging: signature, input example, metadata, serialization."""
    example = sample.head(INPUT_EXAMPLE_ROWS)
    return {
        "pip_requirements": pip_requirements(extra_packages),
        "signature": infer_signature(example, model.predict_proba(example)),
        "input_example": example,
        "metadata": model_metadata(profile, candidate),
        "serialization_format": mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
    }


def save_model(
    model: Classifier,
    path: str,
    sample: pd.DataFrame,
    profile: ReferenceProfile,
    candidate: str,
    extra_packages: Sequence[str] = (),
) -> None:
    """Save a fitted model as an MLflow sklearn-flavor directory at `path`."""
    mlflow.sklearn.save_model(model, path, **_flavor_kwargs(model, sample, profile, candidate, extra_packages))


def log_model(
    model: Classifier,
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


def load_model(uri_or_path: str) -> Classifier:
    """Load a model saved by `save_model` or `log_model` (local path or any MLflow model URI)."""
    model: Classifier = mlflow.sklearn.load_model(uri_or_path)
    return model


def load_profile(model_dir: str | Path) -> ReferenceProfile:
    """Read the reference profile from a downloaded model directory's MLmodel metadata."""
    metadata = Model.load(str(Path(model_dir) / "MLmodel")).metadata or {}
    if METADATA_KEY not in metadata:
        raise ValueError(f"{model_dir} is not a plinth model: MLmodel metadata has no '{METADATA_KEY}' block")
    return ReferenceProfile.from_dict(metadata[METADATA_KEY]["reference_profile"])
