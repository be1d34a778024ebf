"""Scoring: plinth's own models on the fast path, anyone else's through `mlflow.pyfunc`, one interface.

`open_predictor` picks the path for a fetched version: a plinth model (MLmodel metadata with a `plinth`
block) is served by its raw estimator (`fast_path.py`); any other model with a signature by `mlflow.pyfunc`
(`pyfunc_path.py`); a version whose files failed their check by `RefusedPredictor`, which refuses every call.
What each door answers is the served task (`served_task.py`), re-exported here for the modules that import
it with the predictors.

A plinth model is stored in skops's format and loads without running code from its files. A pickle (anyone
else's model, or a plinth model saved before skops) runs code when loaded, so it is loaded only where
MLFLOW_ALLOW_PICKLE_DESERIALIZATION allows it; elsewhere the version is refused like one that fails its
signature (never ready, one log line, `plinth_model_verification{result="pickle_refused"}`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from components.common.modeling import is_pickle, pickle_allowed
from components.common.task import REGRESSION
from serving.model_service.columns import Batch
from serving.model_service.fast_path import FastPredictor
from serving.model_service.pyfunc_path import PyfuncPredictor, declared_task, pickle_refusal
from serving.model_service.registry import ModelLoadError, ModelRef
from serving.model_service.served_task import ServedTask, check_output
from serving.model_service.settings import Settings

__all__ = [
    "FastPredictor",
    "Predictor",
    "PyfuncPredictor",
    "RefusedPredictor",
    "ServedTask",
    "check_output",
    "open_predictor",
]


class Predictor(Protocol):
    """One loaded model: (n, classes) probabilities, (n,) values or (n,) labels for a typed batch."""

    task: ServedTask

    def load(self) -> None:
        """Load what scoring needs (once per worker)."""

    def warm_up(self, batch: Batch) -> np.ndarray:
        """Predict `batch` once before serving, and settle how the hot path calls the model."""

    def predict(self, batch: Batch) -> np.ndarray:
        """Return the model's output for the rows of `batch`."""


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


def open_predictor(ref: ModelRef, settings: Settings) -> Predictor:
    """Return the predictor of a fetched model: the fast path for plinth models, pyfunc for the rest.

    Raises:
        ModelRefused: the files are a pickle and MLFLOW_ALLOW_PICKLE_DESERIALIZATION is false, or (pyfunc path)
            their loader module is neither plinth's nor allow-listed.
        ModelLoadError: the task cannot be decided, or contradicts the setting.
    """
    if ref.profile is not None:
        declared_task(ref, settings)
        if is_pickle(ref.mlmodel) and not pickle_allowed():
            raise pickle_refusal(ref)
        return FastPredictor(ref, ref.profile.task)
    return PyfuncPredictor(ref, settings)
