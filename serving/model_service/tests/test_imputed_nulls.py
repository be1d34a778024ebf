"""A null where the training sample had none is answered, as the fitted pipeline answers it (issue 23, part 4).

The breast-cancer champion was trained on a table without a single gap; every plinth candidate still imputes
every feature, so its signature marks every column optional, and the published contract says why.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from components.common import modeling
from components.common.features import prepare_features
from serving.bench.demo_model import RegisteredModel


def test_a_null_in_a_column_complete_in_training_is_answered_like_the_fitted_pipeline(
    client: TestClient, registered: RegisteredModel
) -> None:
    assert registered.profile is not None
    assert registered.profile.features["mean_radius"].missing_share == 0.0  # no gap in training
    rows = [{**row, "mean_radius": None} for row in registered.instances(0, 3)]
    rows[2]["worst_area"] = None
    counted = {name: missing_values(name) for name in ("mean_radius", "worst_area", "mean_texture")}

    response = client.post("/predict", json={"instances": rows})

    assert response.status_code == 200, response.text
    typed = prepare_features(pd.DataFrame(rows), registered.profile)
    assert typed["mean_radius"].isna().all()
    expected = modeling.predict_output(registered.model, registered.task, typed)[:, 1]
    served = [prediction["probability"] for prediction in response.json()["predictions"]]
    np.testing.assert_allclose(served, expected, rtol=1e-9, atol=1e-12)
    assert not np.allclose(expected, registered.expected(0, 3)[:, 1])  # the null changed the answer: it was read
    gaps = {name: missing_values(name) - before for name, before in counted.items()}
    assert gaps == {"mean_radius": 3.0, "worst_area": 1.0, "mean_texture": 0.0}  # counted per column, as served


def missing_values(feature: str) -> float:
    """Return plinth_missing_values_total for `feature` in this process (the in-process service's registry)."""
    return REGISTRY.get_sample_value("plinth_missing_values_total", {"feature": feature}) or 0.0


def test_the_contract_says_each_column_may_be_null_and_why(client: TestClient) -> None:
    instance = client.get("/docs.json").json()["components"]["schemas"]["Instance"]
    radius = instance["properties"]["mean_radius"]
    assert radius["type"] == ["number", "null"]
    assert radius["description"].startswith("May be null: a plinth model fills a missing value itself")
    assert "mean_radius" in instance["required"]  # present in every record, null or not
