"""POST /explain on the session's in-process binary service: contributions that sum to what /predict answers,
/predict's validation, its own metrics (none of /predict's move), its own row bound, and its published contract.
"""

from __future__ import annotations

import os
import sys
import threading
from types import ModuleType

import numpy as np
import pytest
from bentoml.exceptions import BentoMLException, UnprocessableEntity
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from serving.bench.demo_model import RegisteredModel
from serving.model_service import contract, settings
from serving.model_service.explain import EXPLAIN_NICENESS, Explainer

from .conftest import env_for, import_service

# /predict's own metrics: an explanation must move none of them.
PREDICT_SERIES = (
    ("plinth_prediction_probability_count", {"class": "1"}),
    ("plinth_predicted_class_total", {"class": "0"}),
    ("plinth_predicted_class_total", {"class": "1"}),
    ("plinth_out_of_range_total", {"feature": "worst_area"}),
    *(("plinth_rejected_requests_total", {"reason": reason}) for reason in ("content_type", "batch_size")),
    ("plinth_rejected_requests_total", {"reason": "missing_feature"}),
)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def predict_series() -> list[float]:
    return [sample(name, **labels) for name, labels in PREDICT_SERIES]


def test_contributions_sum_to_the_served_probability(client: TestClient, registered: RegisteredModel) -> None:
    rows = registered.instances(0, 5)
    answer = client.post("/explain", json={"instances": rows})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model_name"], body["model_version"]) == (registered.name, registered.version)
    assert (body["method"], body["units"]) == ("linear", "log_odds")  # the sklearn candidate, P(class 1) as log-odds
    predicted = client.post("/predict", json={"instances": rows}).json()["predictions"]
    assert len(body["explanations"]) == len(rows)
    for explained, prediction in zip(body["explanations"], predicted, strict=True):
        contributions = explained["contributions"]["1"]
        assert list(contributions) == list(registered.features.columns)
        log_odds = explained["base_value"]["1"] + sum(contributions.values())
        assert log_odds == pytest.approx(explained["output"]["1"], rel=1e-9, abs=1e-9)
        assert 1.0 / (1.0 + np.exp(-log_odds)) == pytest.approx(prediction["probability"], rel=1e-9, abs=1e-12)
    columnar = {"columns": list(registered.features.columns), "data": [list(row.values()) for row in rows]}
    assert client.post("/explain", json=columnar).json()["explanations"] == body["explanations"]


def test_explanations_are_metered_apart_and_move_no_predict_metric(
    client: TestClient, registered: RegisteredModel, service_module: ModuleType
) -> None:
    before = {code: sample("plinth_explain_requests_total", code=code) for code in ("2xx", "4xx")}
    rows_before = sample("plinth_explained_rows_total", method="linear")
    timed_before = sample("plinth_explain_duration_seconds_count")
    predict_before = predict_series()
    extreme = {**registered.instances(0, 1)[0], "worst_area": float(registered.features["worst_area"].max()) * 2}
    assert client.post("/explain", json={"instances": [*registered.instances(0, 3), extreme]}).status_code == 200
    assert client.post("/explain", content=b"a=1", headers={"content-type": "text/plain"}).status_code == 415
    too_many = registered.instances(0, service_module.SETTINGS.explain_max_rows + 1)
    assert client.post("/explain", json={"instances": too_many}).status_code == 400
    assert client.post("/explain", json={"instances": [{}]}).status_code == 400
    assert predict_series() == predict_before
    assert sample("plinth_explain_requests_total", code="2xx") == before["2xx"] + 1
    assert sample("plinth_explain_requests_total", code="4xx") == before["4xx"] + 3
    assert sample("plinth_explained_rows_total", method="linear") == rows_before + 4
    assert sample("plinth_explain_duration_seconds_count") == timed_before + 4


def test_explain_validates_as_predict_does_with_its_own_row_bound(
    client: TestClient, registered: RegisteredModel, service_module: ModuleType
) -> None:
    wrong = {**registered.instances(0, 1)[0], "mean_radius": "12.5"}
    refused = client.post("/explain", json={"instances": [wrong]})
    assert refused.status_code == 400
    assert refused.json()["detail"][0]["loc"] == ["instances", 0, "mean_radius"]
    limit = service_module.SETTINGS.explain_max_rows
    assert limit == 20 < service_module.SETTINGS.max_instances
    assert client.post("/explain", json={"instances": registered.instances(0, limit)}).status_code == 200
    too_many = client.post("/explain", json={"instances": registered.instances(0, limit + 1)})
    assert too_many.json()["detail"][0]["type"] == "too_long"
    oversize = b" " * (service_module.SETTINGS.max_body_bytes + 1)
    huge = client.post("/explain", content=oversize, headers={"content-type": "application/json"})
    assert huge.status_code == 413


def test_the_contract_publishes_explain_with_its_bound_and_answer(
    client: TestClient, registered: RegisteredModel
) -> None:
    spec = client.get("/docs.json").json()
    operation = spec["paths"]["/explain"]["post"]
    assert {"200", "400", "413", "415", "422", "429", "503"} <= set(operation["responses"])
    schemas = spec["components"]["schemas"]
    assert schemas["ExplainRequest"]["oneOf"][0]["properties"]["instances"]["maxItems"] == 20
    explanation = schemas["Explanation"]["properties"]
    assert explanation["contributions"]["required"] == ["1"]
    assert explanation["contributions"]["properties"]["1"]["required"] == list(registered.features.columns)


def test_one_explanation_at_a_time_and_none_for_a_pyfunc_model(service_module: ModuleType) -> None:
    explainer = Explainer(service_module.PREDICTOR.estimator, service_module.MODEL.profile, "m", "1")
    batch = service_module.FrameBuilder(service_module.MODEL.columns).build(service_module.WARM_UP_ROWS[:1])
    with explainer.busy, pytest.raises(BentoMLException, match="another explanation") as busy:
        explainer.answer(batch)
    assert busy.value.error_code == 429
    if sys.platform.startswith("linux"):  # computed on a thread whose CPU goes to /predict's threads first
        niceness = explainer.thread.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        assert niceness.result() >= EXPLAIN_NICENESS + os.getpriority(os.PRIO_PROCESS, 0)
    assert explainer.answer(batch)["explanations"]
    with pytest.raises(UnprocessableEntity, match="plinth's own models only"):
        Explainer(None, None, "m", "1").answer(batch)


def test_explain_off_removes_the_route_and_its_contract(registered: RegisteredModel) -> None:
    module = import_service(env_for(registered, **{settings.ENV_EXPLAIN: "off"}))
    assert "explain" not in module.ModelService.apis
    generic = module.ModelService.openapi_spec.asdict()
    document = contract.document(generic, module.MODEL.columns, module.TASK, 10, module.EXAMPLE_INPUT)
    assert b"/explain" not in document


@pytest.mark.parametrize(("value", "message"), [("0", "between 1 and 1000"), ("many", "not a number")])
def test_a_bad_row_bound_is_named(value: str, message: str) -> None:
    with pytest.raises(settings.SettingsError, match=f"{settings.ENV_EXPLAIN_MAX_ROWS}='{value}'.*{message}"):
        settings.Settings.from_env({settings.ENV_EXPLAIN_MAX_ROWS: value})
