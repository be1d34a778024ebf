"""Find the registered model the settings point to, fetch it once, and load it for fast prediction.

Serving calls the estimator's raw `predict_proba` (the contract of `components.common.modeling`), not
`mlflow.pyfunc`: the pyfunc wrapper's schema enforcement and pandas round trips cost more than the model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.common.modeling import Classifier, load_model, load_profile
from components.common.profile import ReferenceProfile
from serving.model_service.settings import Settings


class ModelLoadError(RuntimeError):
    """The configured model cannot be found, fetched or used; the message says which and why."""


# MLflow signature types a strict JSON number can carry (JSON integers are accepted for floats).
NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})


@dataclass(frozen=True)
class ModelRef:
    """A registered model version fetched to a local directory, with what the schema needs."""

    name: str
    version: str
    local_dir: Path
    profile: ReferenceProfile
    feature_names: list[str]


def _cache_dir(settings: Settings, version: str, identity: str) -> Path:
    """Return where a version is kept locally: versions are immutable, so one fetch per machine suffices.

    `identity` (the version's source and creation time) is part of the key: a store deleted and recreated
    at the same URI reuses version numbers for different models.
    """
    store = hashlib.sha256(f"{settings.tracking_uri}|{identity}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "plinth-models" / store / settings.model_name / version


def _download(settings: Settings, version: str, identity: str) -> Path:
    """Fetch the model directory once; concurrent workers race safely through an atomic rename."""
    import mlflow

    target = _cache_dir(settings, version, identity)
    if (target / "MLmodel").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".fetch-"))
    try:
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{settings.model_name}/{version}",
            dst_path=str(staging),
            tracking_uri=settings.tracking_uri,
        )
        os.replace(staging, target)
    except OSError:
        if not (target / "MLmodel").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def signature_features(local_dir: Path, profile: ReferenceProfile) -> list[str]:
    """Return the input names of the model signature, checked against the reference profile.

    The request schema is generated from these names; the profile supplies each feature's ranges.

    Raises:
        ValueError: no signature, a non-numeric input, or names that differ from the profile's.
    """
    from mlflow.models import Model

    signature = Model.load(str(local_dir / "MLmodel")).signature
    if signature is None or signature.inputs is None:
        raise ValueError("the model has no input signature")
    names = [str(name) for name in signature.inputs.input_names()]
    types = [getattr(kind, "name", str(kind)) for kind in signature.inputs.input_types()]
    odd = [f"{name}: {kind}" for name, kind in zip(names, types, strict=True) if kind not in NUMERIC_TYPES]
    if odd:
        raise ValueError(f"serving takes numeric features only; the signature has {odd}")
    if names != profile.feature_names:
        raise ValueError("the signature's inputs differ from the reference profile's features")
    return names


def fetch(settings: Settings) -> ModelRef:
    """Resolve the alias (or pinned version) in the registry and fetch that version's files.

    Raises:
        ModelLoadError: the registry, the model, the alias or the version is missing, or the files are
            not a plinth model.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    try:
        if settings.model_version:
            found = client.get_model_version(settings.model_name, settings.model_version)
        else:
            found = client.get_model_version_by_alias(settings.model_name, settings.model_alias)
        version = str(found.version)
        local_dir = _download(settings, version, f"{found.source}|{found.creation_timestamp}")
        profile = load_profile(local_dir)
        features = signature_features(local_dir, profile)
    except (MlflowException, OSError, ValueError, KeyError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelLoadError(f"cannot load {settings.model_selector} from {settings.tracking_uri}: {reason}") from error
    return ModelRef(settings.model_name, version, local_dir, profile, features)


class Predictor:
    """The estimator plus the cheapest input form it accepts without warnings or different answers."""

    def __init__(self, estimator: Classifier, feature_names: list[str]) -> None:
        self.estimator = estimator
        self.columns = pd.Index(feature_names)
        self.wants_frame = True

    @classmethod
    def load(cls, ref: ModelRef) -> Predictor:
        """Load the estimator from the fetched directory."""
        try:
            estimator = load_model(str(ref.local_dir))
        except Exception as error:  # any unpickling failure means: do not serve
            raise ModelLoadError(f"cannot load model files of {ref.name} v{ref.version}: {error}") from error
        return cls(estimator, ref.feature_names)

    def warm_up(self, rows: np.ndarray) -> np.ndarray:
        """Predict once on `rows` and pick the input form for the hot path.

        A bare float array skips pandas, but an estimator fitted on a DataFrame warns about missing
        feature names (and a wrapper may need them), so the array form is used only when it is silent
        and gives the same answers as the DataFrame form.

        Raises:
            ModelLoadError: the model does not answer with an (n, 2) probability array.
        """
        try:
            expected = np.asarray(self.estimator.predict_proba(pd.DataFrame(rows, columns=self.columns)))
        except Exception as error:  # a model that cannot predict must not serve
            raise ModelLoadError(f"warm-up prediction failed: {error}") from error
        if expected.shape != (len(rows), 2) or not np.all(np.isfinite(expected)):
            raise ModelLoadError(f"warm-up prediction returned shape {expected.shape}, expected ({len(rows)}, 2)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                bare = np.asarray(self.estimator.predict_proba(rows))
            self.wants_frame = not np.allclose(bare, expected)
        except Exception:  # warnings raised as errors, or an estimator that needs columns
            self.wants_frame = True
        return expected[:, 1]

    def positive_proba(self, rows: np.ndarray) -> np.ndarray:
        """Return P(class 1) for each row of a float array in training feature order."""
        features = pd.DataFrame(rows, columns=self.columns, copy=False) if self.wants_frame else rows
        return np.asarray(self.estimator.predict_proba(features))[:, 1]
