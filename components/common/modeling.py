"""How plinth stores a model: one format for every candidate, so serving has one load path.

Every candidate (scikit-learn, XGBoost, PyTorch) is one scikit-learn style estimator that takes the raw
feature columns (preprocessing included, `features.py`), saved with MLflow's sklearn flavor. Classifiers
answer `predict_proba` with one column per class of the task; regressors answer `predict`. The task and
the reference profile ride in the MLmodel metadata under `plinth`, so whoever loads the model also gets
what problem it solves and what its inputs should look like.

The estimator is stored in skops's format, not as a pickle: loading a pickle runs whatever code the file
names, while skops rebuilds only scikit-learn, NumPy and SciPy types and the ones it is told to trust. That
list is TRUSTED_TYPES, held here in plinth's code: MLflow's own loader reads the list from the model's
MLmodel file (which whoever writes the file controls), and so refuses skops too when
MLFLOW_ALLOW_PICKLE_DESERIALIZATION is false. plinth's loader therefore loads its own models with that
variable false, and leaves any other format to MLflow, which honours it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, Protocol

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import Model, ModelSignature, infer_signature
from mlflow.types.schema import ColSpec, Schema

from components.common.features import distinct_rows
from components.common.profile import ReferenceProfile
from components.common.task import Task
from components.common.tracking import integer_columns_checked

METADATA_KEY = "plinth"
MODEL_ARTIFACT_NAME = "model"
INPUT_EXAMPLE_ROWS = 3
# MLflow's switch for loading pickles (true unless set); plinth's own models load with it false.
ENV_ALLOW_PICKLE = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
# What loading any plinth model needs; candidates add their framework (xgboost, torch).
BASE_PACKAGES = ("mlflow", "scikit-learn", "skops", "numpy", "pandas")
# What skops may rebuild beyond scikit-learn/NumPy/SciPy, by name: the shared preprocessing's category
# function and a dtype that SimpleImputer keeps, the XGBoost candidate (its booster's state is XGBoost's own
# serialised model, a buffer that XGBoost parses; no Python object is unpickled) and the torch candidate
# (its state holds the network's weights as numpy arrays, `train_torch/core.py`), and the linear candidate's
# time-budgeted lbfgs (a LogisticRegression whose state is LogisticRegression's: the train step saves it as a
# plain one, `train_sklearn/core.py::as_saved`, but models built by `build_model` elsewhere and saved as fitted
# must load too). Nothing else loads. The XGBoost time budget's callback is removed before saving
# (`for_cpu_inference`), and the target and ordinal encoders of the categories are scikit-learn's own.
# The HistGradientBoosting candidate is saved as scikit-learn's plain estimator (`train_hgb/core.py::as_saved`);
# skops does not list three of the types inside it: its trees (TreePredictor, arrays of nodes), and the
# category step it builds itself, which converts the other columns with `functools.partial(check_array, ...)`
# (a partial loads only around a function that is itself trusted, so `check_array` is named too).
# A learner calibrated on the validation rows (`decision.py`) adds scikit-learn's two private calibration holders,
# whose state is the frozen learner and the fitted sigmoid's two numbers (isotonic regression is trusted already).
TRUSTED_TYPES = (
    "components.common.features.category_frame",
    "numpy.dtype",
    "components.train_sklearn.core.BudgetedLogisticRegression",
    "components.train_xgboost.core.LabelEncodedClassifier",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
    "components.train_torch.core.TorchMLPClassifier",
    "components.train_torch.core.TorchMLPRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "functools.partial",
    "sklearn.utils.validation.check_array",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
)


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


def model_metadata(
    profile: ReferenceProfile,
    candidate: str,
    reference_predictions: np.ndarray | None = None,
    decision: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the MLmodel metadata block that plinth's serving layer reads.

    `reference_predictions` are the model's own outputs for its input example rows, computed at training
    time and signed with the rest of the directory: a rollout sends the canary those rows before any traffic
    and refuses it unless it answers the same (a broken image, a wrong artifact, a mis-wired schema).
    `decision` (`decision.Decision.metadata()`) is how its output becomes a label: the binary threshold and
    the calibration chosen on validation rows; without it a label is the 0.5 / most probable class.
    """
    block: dict[str, Any] = {
        "candidate": candidate,
        "target": profile.target,
        "task": profile.task.to_dict(),
        "feature_names": profile.feature_names,
        "reference_profile": profile.to_dict(),
    }
    if reference_predictions is not None:
        block["reference_predictions"] = np.asarray(reference_predictions, dtype=np.float64).tolist()
    if decision is not None:
        block["decision"] = dict(decision)
    return {METADATA_KEY: block}


def signature(model: Any, features: pd.DataFrame, profile: ReferenceProfile) -> ModelSignature:
    """Return the model signature: each input's type, every input optional (`required: false`).

    Every plinth candidate fills a missing value itself (`features.build_preprocessor`: the training median or a
    missing indicator, a category of its own, or XGBoost's learned missing branch), whether or not the training
    sample had gaps in that column: a served row with a null is answered, not refused because the sample
    happened to be complete. The types are inferred from all training rows, not only the input example, so a
    type is never guessed from three rows.
    """
    output = predict_output(model, profile.task, features.head(INPUT_EXAMPLE_ROWS))
    with integer_columns_checked():  # the types of all rows, from the rows holding each distinct value
        inferred = infer_signature(distinct_rows(features), output)
    assert inferred.inputs is not None
    inputs = Schema([ColSpec(spec.type, spec.name, required=False) for spec in inferred.inputs.inputs])
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
    decision: dict[str, Any] | None,
) -> dict[str, Any]:
    """Arguments shared by saving and logging: signature, input example, metadata, serialization."""
    return {
        "pip_requirements": pip_requirements(extra_packages),
        "signature": signature(model, sample, profile),
        "input_example": sample.head(INPUT_EXAMPLE_ROWS),
        "metadata": model_metadata(
            profile, candidate, predict_output(model, profile.task, sample.head(INPUT_EXAMPLE_ROWS)), decision
        ),
        "serialization_format": mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        "skops_trusted_types": list(TRUSTED_TYPES),
    }


def save_model(
    model: Estimator,
    path: str,
    sample: pd.DataFrame,
    profile: ReferenceProfile,
    candidate: str,
    extra_packages: Sequence[str] = (),
    decision: dict[str, Any] | None = None,
) -> None:
    """Save a fitted model as an MLflow sklearn-flavor directory at `path` (`decision`: `model_metadata`)."""
    kwargs = _flavor_kwargs(model, sample, profile, candidate, extra_packages, decision)
    mlflow.sklearn.save_model(model, path, **kwargs)


def log_model(
    model: Estimator,
    sample: pd.DataFrame,
    profile: ReferenceProfile,
    candidate: str,
    extra_packages: Sequence[str] = (),
    decision: dict[str, Any] | None = None,
) -> str:
    """Log a fitted model to the active MLflow run and return its model URI (`decision`: `model_metadata`)."""
    kwargs = _flavor_kwargs(model, sample, profile, candidate, extra_packages, decision)
    info = mlflow.sklearn.log_model(model, name=MODEL_ARTIFACT_NAME, **kwargs)
    return str(info.model_uri)


def is_pickle(model: Model) -> bool:
    """Return True when loading the model's estimator would unpickle it (a sklearn flavor not in skops format)."""
    flavor = model.flavors.get(mlflow.sklearn.FLAVOR_NAME)
    return flavor is not None and flavor.get("serialization_format") != mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS


def pickle_allowed() -> bool:
    """Return MLFLOW_ALLOW_PICKLE_DESERIALIZATION as MLflow reads it (true unless set otherwise)."""
    from mlflow.environment_variables import MLFLOW_ALLOW_PICKLE_DESERIALIZATION

    return bool(MLFLOW_ALLOW_PICKLE_DESERIALIZATION.get())


def load_model(uri_or_path: str) -> Any:
    """Load a model saved by `save_model` or `log_model` (local path or any MLflow model URI).

    A skops-format model is rebuilt from TRUSTED_TYPES alone, whatever MLFLOW_ALLOW_PICKLE_DESERIALIZATION
    says; any other (a pickle saved before plinth used skops) is left to MLflow, which loads it only where
    that variable allows.

    Raises:
        ValueError: the model has no sklearn flavor, or its file names a type outside TRUSTED_TYPES.
        mlflow.exceptions.MlflowException: a pickle, with MLFLOW_ALLOW_PICKLE_DESERIALIZATION false.
    """
    local = Path(uri_or_path)
    if local.is_dir():
        return load_local_model(local, uri_or_path)
    # Into a copy, never the stored files: for a local artifact store MLflow would hand back the stored model
    # directory itself and write its `registered_model_meta` there, a file the version's signature does not
    # cover, so the model service would then refuse the champion.
    with tempfile.TemporaryDirectory(prefix="plinth-model-") as copy:
        return load_local_model(
            Path(mlflow.artifacts.download_artifacts(artifact_uri=uri_or_path, dst_path=copy)), uri_or_path
        )


def load_local_model(local: Path, uri_or_path: str) -> Any:
    """Load the model in the directory `local` (`uri_or_path` names it in errors)."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    model = Model.load(str(local / "MLmodel"))
    flavor = model.flavors.get(mlflow.sklearn.FLAVOR_NAME)
    if flavor is None:
        raise ValueError(f"{uri_or_path} is not a plinth model: it has no {mlflow.sklearn.FLAVOR_NAME} flavor")
    if is_pickle(model):
        return mlflow.sklearn.load_model(str(local))
    try:
        return skops.io.load(local / flavor["pickled_model"], trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException as error:
        raise ValueError(f"{uri_or_path} names types plinth does not trust, so it is not loaded: {error}") from error


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
