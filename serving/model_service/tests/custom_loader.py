"""A model that brings its own loader: the attack the loader allow-list stops.

`log_marker_model` logs an MLflow pyfunc model whose `python_function.loader_module` is a module the test
writes into the model's `code/` directory. Importing that module (which `mlflow.pyfunc.load_model` does, after
putting `code/` on the import path) writes a marker file: the marker existing means the model's own code ran
in the process that loaded it. Otherwise the model is a working regressor (zeros), so that where its loader
is allowed the service must serve it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

from components.common import modeling, tracking
from components.common.task import TAG_TASK, Task

LOADER_SOURCE = '''"""Written by a test: runs when imported, as any model's own loader would."""
import pathlib

import numpy as np

pathlib.Path({marker!r}).write_text("the model's own code ran")


class _Zeros:
    def predict(self, frame, params=None):
        return np.zeros(len(frame))


def _load_pyfunc(path):
    return _Zeros()
'''
FEATURES = pd.DataFrame({"x1": [0.5, 1.5, 2.5, 3.5], "x2": [1.0, 0.0, 1.0, 0.0]})


@dataclass(frozen=True)
class MarkerModel:
    """A registered version whose loader module writes `marker` when imported."""

    tracking_uri: str
    name: str
    version: str
    module: str
    marker: Path

    def instances(self) -> list[dict[str, float]]:
        """Return two rows that fit the model's signature."""
        return [{str(k): float(v) for k, v in row.items()} for row in FEATURES.head(2).to_dict(orient="records")]


def log_marker_model(
    tracking_uri: str, name: str, root: Path, alias: str | None = tracking.CHAMPION, task: str | None = "regression"
) -> MarkerModel:
    """Log and register (unsigned, `alias` moved to it) a regressor whose loader module is written under `root`.

    `task` is its `plinth.task` tag (None: untagged, so that no task check refuses it before its loader is).
    """
    module = f"plinth_test_loader_{uuid.uuid4().hex[:12]}"
    marker = root / f"{module}.ran"
    source = root / f"{module}.py"
    source.write_text(LOADER_SOURCE.format(marker=str(marker)))
    client = tracking.connect(tracking_uri)
    experiment_id = tracking.ensure_experiment(client, "custom-loaders", tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            loader_module=module,
            code_paths=[str(source)],
            signature=infer_signature(FEATURES, np.zeros(len(FEATURES))),
            pip_requirements=modeling.pip_requirements(()),
        )
    registry = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    if not registry.search_registered_models(filter_string=f"name = '{name}'"):
        registry.create_registered_model(name)
    version = str(registry.create_model_version(name, str(info.model_uri)).version)
    if task:
        registry.set_model_version_tag(name, version, TAG_TASK, Task(task).tag())
    if alias:
        registry.set_registered_model_alias(name, alias, version)
    source.unlink()  # only the copy in the model's code/ directory remains importable
    return MarkerModel(tracking_uri, name, version, module, marker)
