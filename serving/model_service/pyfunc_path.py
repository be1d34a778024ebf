"""The pyfunc path: any other model with a signature, through `mlflow.pyfunc`, and how its task is decided.

Its task comes from the registry tag `plinth.task`, the `PLINTH_TASK` setting, or the model itself (a
scikit-learn classifier with `predict_proba` and `classes_` answers probabilities; any other classifier
answers labels only; a numeric output is a regression).

A model's loader module runs its own code when `mlflow.pyfunc` imports it, pickle or not: a loader that is not
plinth's nor allow-listed is refused before the import (`components/common/loaders.py`; `registry.fetch` checks
it first, and this path checks again right before it loads: `loader_refused`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from components.common.modeling import ENV_ALLOW_PICKLE, pickle_allowed
from components.common.signing import PICKLE_REFUSED, Verdict
from components.common.task import BINARY, MULTICLASS, REGRESSION, TAG_TASK, plain_label
from serving.model_service.columns import Batch
from serving.model_service.fast_path import PREPROCESSING, PYFUNC
from serving.model_service.registry import ModelLoadError, ModelRef, ModelRefused
from serving.model_service.served_task import ServedTask
from serving.model_service.settings import ENV_TASK, Settings

NUMERIC_OUTPUTS = frozenset({"double", "float", "long", "integer", "float64", "float32", "int64", "int32"})


class PyfuncPredictor:
    """Any other model with a signature, through `mlflow.pyfunc` (loaded when the API is defined)."""

    def __init__(self, ref: ModelRef, settings: Settings) -> None:
        import mlflow.pyfunc

        refusal = settings.loader_policy.check(ref.local_dir, ref.name, ref.version)
        if refusal is not None:  # whoever built `ref` without `registry.fetch`: still never imported
            raise ModelRefused(ref.name, ref.version, refusal)
        try:
            self.pyfunc = mlflow.pyfunc.load_model(str(ref.local_dir))
        except Exception as error:
            if not pickle_allowed() and ENV_ALLOW_PICKLE in str(error):  # MLflow's loaders name it when they refuse
                raise pickle_refusal(ref) from error
            raise ModelLoadError(f"cannot load model files of {ref.name} v{ref.version}: {error}") from error
        self.raw = _sklearn_classifier(ref, self.pyfunc)
        self.task = _pyfunc_task(ref, settings, self.raw)
        self.ref = ref

    def load(self) -> None:
        """Nothing left to load: the task could only be decided from the loaded model."""

    def warm_up(self, batch: Batch) -> np.ndarray:
        """Predict once (pyfunc has nothing to settle)."""
        output = self.predict(batch)
        PREPROCESSING.labels(self.ref.name, self.ref.version, PYFUNC).set(1)
        return output

    def predict(self, batch: Batch) -> np.ndarray:
        """Return `predict_proba` where the model offers it, else pyfunc's `predict` as one value per row."""
        if self.task.probabilities:
            return np.asarray(self.raw.predict_proba(batch.frame), dtype=np.float64)
        output = self.pyfunc.predict(batch.frame)
        if isinstance(output, pd.DataFrame) and output.shape[1] == 1:
            output = output.iloc[:, 0]
        values = np.asarray(output)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if self.task.kind == REGRESSION:
            return values.astype(np.float64)
        return np.array([plain_label(value) for value in values.tolist()], dtype=object)


def _sklearn_classifier(ref: ModelRef, pyfunc: Any) -> Any:
    """Return the raw scikit-learn classifier behind `pyfunc` when it has `predict_proba` and `classes_`."""
    if "sklearn" not in ref.mlmodel.flavors:
        return None
    from sklearn.base import is_classifier

    raw = pyfunc.get_raw_model()
    if is_classifier(raw) and hasattr(raw, "predict_proba") and hasattr(raw, "classes_"):
        return raw
    return None


def declared_task(ref: ModelRef, settings: Settings) -> str | None:
    """Return the task the setting or the registry tag names; refuse when they disagree."""
    declared = ref.profile.task.kind if ref.profile else ref.tags.get(TAG_TASK)
    if settings.task and declared and settings.task != declared:
        raise ModelLoadError(f"{ENV_TASK}={settings.task} contradicts the model's own task ({declared})")
    return settings.task or declared


def _pyfunc_task(ref: ModelRef, settings: Settings, raw: Any) -> ServedTask:
    """Decide how a pyfunc model is served from the declared task, its classes and its output signature."""
    kind = declared_task(ref, settings)
    classes = tuple(plain_label(label) for label in raw.classes_) if raw is not None else ()
    if kind == REGRESSION:
        return ServedTask(REGRESSION)
    if classes:
        inferred = BINARY if len(classes) == 2 else MULTICLASS
        if kind and kind != inferred:
            raise ModelLoadError(f"the model is a {inferred} classifier with {len(classes)} classes, not {kind}")
        return ServedTask(inferred, classes, probabilities=True)
    if kind:
        return ServedTask(kind)
    outputs = ref.mlmodel.signature.outputs if ref.mlmodel.signature else None
    output_types = {str(getattr(kind, "name", kind)) for kind in outputs.input_types()} if outputs else set()
    if output_types <= NUMERIC_OUTPUTS:
        return ServedTask(REGRESSION)
    raise ModelLoadError(
        f"cannot tell the model's task (its output is {', '.join(sorted(output_types))}): "
        f"set {ENV_TASK}=binary or multiclass, or tag the version {TAG_TASK}"
    )


def pickle_refusal(ref: ModelRef) -> ModelRefused:
    """Return the refusal of a version whose files are a pickle while pickles are not allowed, naming the opt-in."""
    message = (
        f"{ref.name} v{ref.version} refused: its files are a pickle, which runs code when loaded, and "
        f"{ENV_ALLOW_PICKLE} is false; set it true (chart value model.allowPickle=true) only for a model you trust"
    )
    return ModelRefused(ref.name, ref.version, Verdict(PICKLE_REFUSED, message))
