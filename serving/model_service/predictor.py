"""Scoring: plinth's own models on the fast path, anyone else's through `mlflow.pyfunc`, one interface.

A plinth model is one fitted scikit-learn style estimator with its task in the MLmodel metadata: serving
calls its raw `predict_proba` / `predict` on the typed frame (pyfunc's schema enforcement and conversions
cost more than the model, and the request schema has already enforced the signature). Any other model with
a signature is loaded with `mlflow.pyfunc`; its task comes from the registry tag `plinth.task`, the
`PLINTH_TASK` setting, or the model itself (a scikit-learn classifier with `predict_proba` and `classes_`
answers probabilities; any other classifier answers labels only; a numeric output is a regression).

A plinth model is stored in skops's format and loads without running code from its files. A pickle (anyone
else's model, or a plinth model saved before skops) runs code when loaded, so it is loaded only where
MLFLOW_ALLOW_PICKLE_DESERIALIZATION allows it; elsewhere the version is refused like one that fails its
signature (never ready, one log line, `plinth_model_verification{result="pickle_refused"}`).

A model's loader module runs its own code when `mlflow.pyfunc` imports it, pickle or not: a loader that is not
plinth's nor allow-listed is refused before the import (`components/common/loaders.py`; `registry.fetch` checks
it first, and the pyfunc path checks again right before it loads: `loader_refused`).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from prometheus_client import Gauge

from components.common.modeling import ENV_ALLOW_PICKLE, is_pickle, load_model, pickle_allowed, predict_output
from components.common.signing import PICKLE_REFUSED, Verdict
from components.common.task import BINARY, MULTICLASS, REGRESSION, TAG_TASK, Label, Task, plain_label
from serving.model_service.columns import Batch
from serving.model_service.compiled import CompiledModel, NotCompiled, compile_model
from serving.model_service.registry import ModelLoadError, ModelRef, ModelRefused
from serving.model_service.settings import ENV_TASK, Settings

# scikit-learn's warning for an array given to an estimator fitted on a DataFrame (harmless in column order).
NO_FEATURE_NAMES = "X does not have valid feature names"
# How the fast path feeds its estimator (`plinth_model_preprocessing{path}`); the pyfunc path is "pyfunc".
COMPILED, BARE, GENERIC, PYFUNC = "compiled", "bare", "generic", "pyfunc"
# Batch dtypes that a fitted numeric step takes as they are.
NUMBER_DTYPES = frozenset({"float64", "int64"})
# The compiled path must answer what the pipeline answers, to the last few bits of a float64.
SAME_RTOL, SAME_ATOL = 1e-9, 1e-12
PREPROCESSING = Gauge(
    "plinth_model_preprocessing",
    "Always 1; `path` says how the served version's inputs reach its estimator: compiled (its fitted "
    "preprocessing as numpy lookups), bare (an all-number block), generic (scikit-learn's own preprocessing on "
    "a DataFrame: a step the compiler does not know) or pyfunc (mlflow.pyfunc).",
    ["model_name", "model_version", "path"],
    multiprocess_mode="max",
)
logger = logging.getLogger("plinth.model_service")
NUMERIC_OUTPUTS = frozenset({"double", "float", "long", "integer", "float64", "float32", "int64", "int32"})


@dataclass(frozen=True)
class ServedTask:
    """What the service answers: the task kind, the classes when known, and whether it has probabilities."""

    kind: str
    classes: tuple[Label, ...] = ()
    probabilities: bool = False

    @classmethod
    def of(cls, task: Task) -> ServedTask:
        """Return how a plinth model of `task` is served (classifiers always answer probabilities)."""
        return cls(task.kind, task.classes, task.is_classification)

    @property
    def class_names(self) -> list[str]:
        """Return the known class labels as strings (metric labels, probability keys)."""
        return [str(label) for label in self.classes]


class Predictor(Protocol):
    """One loaded model: (n, classes) probabilities, (n,) values or (n,) labels for a typed batch."""

    task: ServedTask

    def load(self) -> None:
        """Load what scoring needs (once per worker)."""

    def warm_up(self, batch: Batch) -> np.ndarray:
        """Predict `batch` once before serving, and settle how the hot path calls the model."""

    def predict(self, batch: Batch) -> np.ndarray:
        """Return the model's output for the rows of `batch`."""


class FastPredictor:
    """A plinth model: the raw estimator, its task from the MLmodel metadata.

    Its fitted preprocessing is compiled into numpy lookups (`compiled.py`): the batch's typed columns become
    the learner's matrix without a DataFrame, whose checks and per-row category naming cost ~2 ms a call. The
    warm-up keeps the compiled path only where it answers what the whole fitted pipeline answers for the
    frame. A model the compiler does not know keeps scikit-learn's path (logged once, and
    `plinth_model_preprocessing{path="generic"}`); one whose inputs are all numbers may still skip the frame:
    it is fed the bare float block once the warm-up shows the same answers (its "no feature names" warning
    is then silenced).
    """

    def __init__(self, ref: ModelRef, plinth_task: Task) -> None:
        self.ref = ref
        self.plinth_task = plinth_task
        self.task = ServedTask.of(plinth_task)
        self.estimator: Any = None
        self.compiled: CompiledModel | None = None
        self.not_compiled = ""
        self.path = GENERIC

    def load(self) -> None:
        """Load the estimator (skops, `modeling.load_model`); any failure means the model must not serve."""
        try:
            self.estimator = load_model(str(self.ref.local_dir))
        except Exception as error:
            raise ModelLoadError(f"cannot load model files of {self.ref.name} v{self.ref.version}: {error}") from error
        columns = self.ref.columns
        numbers = [c.name for c in columns if c.dtype in NUMBER_DTYPES]
        try:
            self.compiled = compile_model(self.estimator, [c.name for c in columns], numbers, self.plinth_task)
        except NotCompiled as reason:
            self.not_compiled = f"its preprocessing holds {reason}, which is not compiled,"

    def warm_up(self, batch: Batch) -> np.ndarray:
        """Predict the frame, then settle the path: compiled, else the bare block (all numbers), else the frame."""
        expected = predict_output(self.estimator, self.plinth_task, batch.frame)
        self.path = GENERIC
        if self.compiled is not None:
            try:
                same = _same(self.compiled.predict(batch), expected)
                self.not_compiled = "" if same else "its compiled preprocessing, which answered otherwise,"
            except Exception as error:  # a learner that refuses the compiled matrix keeps the pipeline
                same, self.not_compiled = False, f"its compiled preprocessing, which failed ({error}),"
            self.path = COMPILED if same else GENERIC
        if self.path == GENERIC and batch.block is not None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=NO_FEATURE_NAMES)
                try:
                    bare = predict_output(self.estimator, self.plinth_task, batch.block)
                    self.path = BARE if np.array_equal(bare, expected) else GENERIC
                except Exception:  # an estimator that needs column names: it keeps the frame
                    self.path = GENERIC
        if self.path == BARE:
            warnings.filterwarnings("ignore", message=NO_FEATURE_NAMES)
        if self.not_compiled and self.path == GENERIC and _first_worker():
            logger.warning(
                "%s v%s: %s so it is scored by scikit-learn's own preprocessing on a DataFrame (slower, same answers)",
                *(self.ref.name, self.ref.version, self.not_compiled),
            )
        PREPROCESSING.labels(self.ref.name, self.ref.version, self.path).set(1)
        return expected

    def predict(self, batch: Batch) -> np.ndarray:
        """Return probabilities (classification) or values (regression) from the raw estimator."""
        if self.path == COMPILED and self.compiled is not None:
            return self.compiled.predict(batch)
        features: Any = batch.block if self.path == BARE else batch.frame
        return predict_output(self.estimator, self.plinth_task, features)


def _same(compiled: np.ndarray, expected: np.ndarray) -> bool:
    """Return True when the compiled path answers what the pipeline answers, up to a float64's last bits.

    A sparse matrix product (the pipeline's one-hot columns) and the dense one may differ there, nothing more.
    """
    return compiled.shape == expected.shape and bool(np.allclose(compiled, expected, rtol=SAME_RTOL, atol=SAME_ATOL))


def _first_worker() -> bool:
    """Return True in the first worker process (or outside a server): what every worker would log, it logs."""
    import bentoml

    return bentoml.server_context.worker_index in (None, 1)


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


class RefusedPredictor:
    """A version whose files failed their signature check: nothing is loaded, every call is refused."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.task = ServedTask(REGRESSION)

    def load(self) -> None:
        """Load nothing: the files are not trusted."""

    def warm_up(self, batch: Batch) -> np.ndarray:
        """Refuse: a refused model never passes a warm-up."""
        raise ModelLoadError(self.reason)

    def predict(self, batch: Batch) -> np.ndarray:
        """Refuse, saying why (the service answers 503 before it gets here)."""
        raise ModelLoadError(self.reason)


def _sklearn_classifier(ref: ModelRef, pyfunc: Any) -> Any:
    """Return the raw scikit-learn classifier behind `pyfunc` when it has `predict_proba` and `classes_`."""
    if "sklearn" not in ref.mlmodel.flavors:
        return None
    from sklearn.base import is_classifier

    raw = pyfunc.get_raw_model()
    if is_classifier(raw) and hasattr(raw, "predict_proba") and hasattr(raw, "classes_"):
        return raw
    return None


def _declared_task(ref: ModelRef, settings: Settings) -> str | None:
    """Return the task the setting or the registry tag names; refuse when they disagree."""
    declared = ref.profile.task.kind if ref.profile else ref.tags.get(TAG_TASK)
    if settings.task and declared and settings.task != declared:
        raise ModelLoadError(f"{ENV_TASK}={settings.task} contradicts the model's own task ({declared})")
    return settings.task or declared


def _pyfunc_task(ref: ModelRef, settings: Settings, raw: Any) -> ServedTask:
    """Decide how a pyfunc model is served from the declared task, its classes and its output signature."""
    kind = _declared_task(ref, settings)
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


def open_predictor(ref: ModelRef, settings: Settings) -> Predictor:
    """Return the predictor of a fetched model: the fast path for plinth models, pyfunc for the rest.

    Raises:
        ModelRefused: the files are a pickle and MLFLOW_ALLOW_PICKLE_DESERIALIZATION is false, or (pyfunc path)
            their loader module is neither plinth's nor allow-listed.
        ModelLoadError: the task cannot be decided, or contradicts the setting.
    """
    if ref.profile is not None:
        _declared_task(ref, settings)
        if is_pickle(ref.mlmodel) and not pickle_allowed():
            raise pickle_refusal(ref)
        return FastPredictor(ref, ref.profile.task)
    return PyfuncPredictor(ref, settings)


def check_output(task: ServedTask, output: np.ndarray, rows: int) -> None:
    """Refuse an output that does not fit the task (a warm-up that fails this never serves).

    Raises:
        ModelLoadError: wrong shape, non-finite numbers, or a non-numeric regression output.
    """
    if task.probabilities:
        expected: tuple[int, ...] = (rows, len(task.classes))
    else:
        expected = (rows,)
    if output.shape != expected:
        raise ModelLoadError(f"warm-up prediction returned shape {output.shape}, expected {expected}")
    if output.dtype != object and not np.all(np.isfinite(output)):
        raise ModelLoadError("warm-up prediction returned non-finite values")
