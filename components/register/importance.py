"""Global importance of a registered model: each feature's mean absolute contribution, logged where people look.

At registration the winner's per-row contributions (`components/common/explain.py`) are averaged into one
number per feature and logged on the version's source run (the candidate's run, which the registry page of the
version links to): `explain/importance.json` (the numbers, the method, the units and which rows they come
from) and `explain/importance.png` (a bar chart of the largest ones); the version gets the three largest as
the tag `plinth.importance.top`. The rows are the evaluation rows where the step is given them (`test_path`),
else a seeded sample drawn from the reference profile (`shapley.background`), and the JSON says which.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from matplotlib import pyplot as plt
from mlflow import MlflowClient

from components.common import modeling
from components.common.explain import contributions
from components.common.features import prepare_features
from components.common.shapley import background

ARTIFACT_DIR = "explain"
TAG_TOP = "plinth.importance.top"
# Rows explained: enough for a stable mean, few enough for the MLP's sampling explainer (seconds, not minutes).
MAX_ROWS = 200
PLOTTED = 20
EVALUATION, PROFILE_SAMPLE = "evaluation", "reference_profile_sample"


def importance_rows(profile: Any, test_path: str = "", rows: int = MAX_ROWS) -> tuple[pd.DataFrame, str]:
    """Return the rows to explain and where they come from: the evaluation split, else a profile sample."""
    if test_path:
        return prepare_features(pd.read_parquet(test_path), profile).head(rows), EVALUATION
    return background(profile, rows, seed=0), PROFILE_SAMPLE


def _figure(importance: dict[str, float], units: str, title: str) -> Any:
    shown = list(importance.items())[:PLOTTED][::-1]
    figure, axes = plt.subplots(figsize=(6, 0.3 * len(shown) + 1.2))
    axes.barh([name for name, _ in shown], [value for _, value in shown])
    axes.set_xlabel(f"mean |contribution| ({units})")
    axes.set_title(title)
    figure.tight_layout()
    return figure


def log_importance(client: MlflowClient, name: str, version: str, run_id: str, test_path: str = "") -> dict[str, Any]:
    """Compute the registered model's global importance and log it on `run_id` and the version; return the record.

    Raises:
        components.common.explain.NotExplainable: the model's preprocessing cannot be mapped to its features.
    """
    model_uri = f"models:/{name}/{version}"
    profile = modeling.profile_from_metadata(mlflow.models.get_model_info(model_uri).metadata, model_uri)
    frame, source = importance_rows(profile, test_path)
    explanation = contributions(modeling.load_model(model_uri), frame, profile)
    importance = explanation.importance()
    record = {
        "model_name": name,
        "model_version": version,
        "method": explanation.method,
        "units": explanation.units,
        "rows": len(frame),
        "rows_from": source,
        "importance": importance,
    }
    client.log_dict(run_id, record, f"{ARTIFACT_DIR}/importance.json")
    figure = _figure(importance, explanation.units, f"{name} v{version}: {explanation.method}")
    client.log_figure(run_id, figure, f"{ARTIFACT_DIR}/importance.png")
    plt.close(figure)
    client.set_model_version_tag(name, version, TAG_TOP, ", ".join(list(importance)[:3]))
    return record
