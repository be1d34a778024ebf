"""HTTP behaviour through BentoML's own seam: `ModelService.to_asgi()` under Starlette's TestClient."""

from __future__ import annotations

import json
from types import ModuleType

import numpy as np
import pytest
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from serving.bench.demo_model import RegisteredModel


def rows(registered: RegisteredModel, start: int, count: int) -> list[dict[str, float]]:
    return registered.features.iloc[start : start + count].to_dict(orient="records")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_ready_and_live_after_load(client: TestClient) -> None:
    assert client.get("/readyz").status_code == 200
    assert client.get("/livez").status_code == 200


def test_example_input_is_accepted(client: TestClient, service_module: ModuleType) -> None:
    response = client.post("/predict", json=service_module.EXAMPLE_INPUT)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1


def test_records_match_in_process_model(client: TestClient, registered: RegisteredModel) -> None:
    batch = rows(registered, 0, 40)
    response = client.post("/predict", json={"instances": batch})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = registered.model.predict_proba(registered.features.iloc[0:40])[:, 1]
    got = np.array([p["probability"] for p in body["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert [p["label"] for p in body["predictions"]] == [int(p >= 0.5) for p in expected]
    assert body["model_name"] == registered.name
    assert body["model_version"] == registered.version
    assert {(p["model_name"], p["model_version"]) for p in body["predictions"]} == {
        (registered.name, registered.version)
    }


def test_columnar_equals_records(client: TestClient, registered: RegisteredModel) -> None:
    frame = registered.features.iloc[5:12]
    shuffled = list(reversed(frame.columns))
    columnar = {"columns": shuffled, "data": frame[shuffled].to_numpy().tolist()}
    records = client.post("/predict", json={"instances": rows(registered, 5, 7)}).json()
    response = client.post("/predict", json=columnar)
    assert response.status_code == 200, response.text
    assert response.json() == records


def test_json_integers_are_numbers(client: TestClient, registered: RegisteredModel) -> None:
    instance = {name: round(value) for name, value in rows(registered, 0, 1)[0].items()}
    assert client.post("/predict", json={"instances": [instance]}).status_code == 200


def _instance(registered: RegisteredModel, **changes: object) -> dict[str, object]:
    instance: dict[str, object] = dict(rows(registered, 0, 1)[0])
    for key, value in changes.items():
        if value is _DROP:
            instance.pop(key)
        else:
            instance[key] = value
    return instance


_DROP = object()

BAD_VALUES = [
    pytest.param("1.5", "float_type", id="string-number"),
    pytest.param(False, "float_type", id="boolean"),
    pytest.param(None, "float_type", id="null"),
    pytest.param([1.0], "float_type", id="list"),
]


@pytest.mark.parametrize(("value", "error_type"), BAD_VALUES)
def test_wrong_type_is_rejected_naming_the_feature(
    client: TestClient, registered: RegisteredModel, value: object, error_type: str
) -> None:
    response = client.post("/predict", json={"instances": [_instance(registered, mean_radius=value)]})
    assert response.status_code == 400
    detail = response.json()["detail"][0]
    assert detail["type"] == error_type
    assert detail["loc"] == ["instances", 0, "mean_radius"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_is_rejected(client: TestClient, registered: RegisteredModel, literal: str) -> None:
    body = json.dumps({"instances": [_instance(registered, mean_texture=0.5)]}).replace("0.5", literal, 1)
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    detail = response.json()["detail"][0]
    assert (detail["type"], detail["loc"][-1]) == ("finite_number", "mean_texture")


def test_implausible_magnitude_is_rejected(client: TestClient, registered: RegisteredModel) -> None:
    response = client.post("/predict", json={"instances": [_instance(registered, mean_smoothness=1.7e308)]})
    assert response.status_code == 400
    detail = response.json()["detail"][0]
    assert (detail["type"], detail["loc"][-1]) == ("less_than_equal", "mean_smoothness")


def test_missing_and_unknown_features_are_named(client: TestClient, registered: RegisteredModel) -> None:
    instance = _instance(registered, mean_area=_DROP, colour=1.0)
    response = client.post("/predict", json={"instances": [instance]})
    assert response.status_code == 400
    errors = {(e["type"], e["loc"][-1]) for e in response.json()["detail"]}
    assert errors == {("missing", "mean_area"), ("extra_forbidden", "colour")}


def test_batch_size_limits(client: TestClient, registered: RegisteredModel, service_module: ModuleType) -> None:
    empty = client.post("/predict", json={"instances": []})
    assert empty.status_code == 400
    assert empty.json()["detail"][0]["type"] == "too_short"
    limit = service_module.SETTINGS.max_instances
    oversize = client.post("/predict", json={"instances": rows(registered, 0, 1) * (limit + 1)})
    assert oversize.status_code == 400
    assert oversize.json()["detail"][0]["type"] == "too_long"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param({"columns": ["mean_radius"], "data": [[1.0]]}, "missing", id="columns-incomplete"),
        pytest.param({"instances": [], "columns": [], "data": []}, "not both", id="both-forms"),
        pytest.param({"columns": "mean_radius", "data": []}, "list of feature names", id="columns-not-list"),
    ],
)
def test_columnar_shape_errors(client: TestClient, body: dict[str, object], fragment: str) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["detail"][0]["msg"]


def test_columnar_row_length_is_checked(client: TestClient, registered: RegisteredModel) -> None:
    columns = list(registered.features.columns)
    response = client.post("/predict", json={"columns": columns, "data": [[1.0] * (len(columns) - 1)]})
    assert response.status_code == 400
    assert "data[0]" in response.json()["detail"][0]["msg"]


def test_non_json_wrong_type_and_oversize_bodies(client: TestClient, service_module: ModuleType) -> None:
    before = {r: sample("plinth_rejected_requests_total", reason=r) for r in ("invalid_json", "content_type")}
    broken = client.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 400
    assert broken.json()["detail"][0]["type"] == "json_invalid"
    form = client.post("/predict", content=b"a=1", headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    assert "application/json" in form.json()["error"]
    limit = service_module.SETTINGS.max_body_bytes
    huge = client.post("/predict", content=b" " * (limit + 1), headers={"content-type": "application/json"})
    assert huge.status_code == 413
    assert str(limit) in huge.json()["error"]
    assert sample("plinth_rejected_requests_total", reason="invalid_json") == before["invalid_json"] + 1
    assert sample("plinth_rejected_requests_total", reason="content_type") == before["content_type"] + 1


def test_server_keeps_serving_after_bad_input(client: TestClient, service_module: ModuleType) -> None:
    for body in (b"[]", b"null", b'{"instances": {}}', b'{"instances": [[]]}', b"\xff\xfe"):
        response = client.post("/predict", content=body, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (body, response.text)
    assert client.post("/predict", json=service_module.EXAMPLE_INPUT).status_code == 200


def test_model_metrics_move_in_process(client: TestClient, registered: RegisteredModel) -> None:
    before_count = sample("plinth_prediction_probability_count")
    before_classes = sample("plinth_predicted_class_total", **{"class": "0"}) + sample(
        "plinth_predicted_class_total", **{"class": "1"}
    )
    before_range = sample("plinth_out_of_range_total", feature="worst_area")
    extreme = _instance(registered, worst_area=registered.features["worst_area"].max() * 2)
    client.post("/predict", json={"instances": [*rows(registered, 0, 9), extreme]})
    assert sample("plinth_prediction_probability_count") == before_count + 10
    after_classes = sample("plinth_predicted_class_total", **{"class": "0"}) + sample(
        "plinth_predicted_class_total", **{"class": "1"}
    )
    assert after_classes == before_classes + 10
    assert sample("plinth_out_of_range_total", feature="worst_area") == before_range + 1
    assert sample("plinth_model_info", model_name=registered.name, model_version=registered.version) == 1


def test_openapi_documents_every_feature(client: TestClient, registered: RegisteredModel) -> None:
    spec = client.get("/docs.json").json()
    operation = spec["paths"]["/predict"]["post"]
    request = json.dumps(operation["requestBody"])
    for name in registered.features.columns:
        assert f'"{name}"' in request
    assert "columns" in request
    response_schema = json.dumps(operation["responses"]["200"])
    assert "predictions" in response_schema
