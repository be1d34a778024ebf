"""The fast path: a plinth model's raw estimator, fed its compiled preprocessing, the bare block or the frame.

A plinth model is one fitted scikit-learn style estimator with its task in the MLmodel metadata: serving
calls its raw `predict_proba` / `predict` on the typed batch (pyfunc's schema enforcement and conversions
cost more than the model, and the request schema has already enforced the signature). Which of the three
feeds it takes is settled once, at warm-up, against what the whole fitted pipeline answers.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
from prometheus_client import Gauge

from components.common.decision import threshold_of
from components.common.modeling import load_model, predict_output
from components.common.task import Task
from serving.model_service.columns import Batch
from serving.model_service.compiled import CompiledModel, NotCompiled, compile_model
from serving.model_service.registry import ModelLoadError, ModelRef
from serving.model_service.served_task import ServedTask

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
        self.task = ServedTask.of(plinth_task, threshold_of(ref.mlmodel.metadata))
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
