"""HTTP behaviour of the binary model through BentoML's own seam: `ModelService.to_asgi()` under TestClient."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from serving.bench.demo_model import RegisteredModel

_DROP = object()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _instance(registered: RegisteredModel, **changes: object) -> dict[str, object]:
    instance: dict[str, object] = dict(registered.instances(0, 1)[0])
    for key, value in changes.items():
        if value is _DROP:
            instance.pop(key)
        else:
            instance[key] = value
    return instance


def test_ready_and_live_after_load(client: TestClient) -> None:
    assert client.get("/readyz").status_code == 200
    assert client.get("/livez").status_code == 200


def test_example_input_is_the_logged_example_and_accepted(client: TestClient, service_module: ModuleType) -> None:
    assert service_module.EXAMPLE_SOURCE == "the model's input example"
    response = client.post("/predict", json=service_module.EXAMPLE_INPUT)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1


def test_binary_answer_keeps_its_shape_and_matches_the_model(client: TestClient, registered: RegisteredModel) -> None:
    response = client.post("/predict", json={"instances": registered.instances(0, 40)})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = registered.expected(0, 40)
    got = np.array([p["probability"] for p in body["predictions"]])
    np.testing.assert_allclose(got, expected[:, 1], rtol=1e-9, atol=1e-12)
    first = body["predictions"][0]
    assert list(first) == ["label", "probability", "probabilities", "model_name", "model_version", "request_id"]
    assert [p["label"] for p in body["predictions"]] == [int(p >= 0.5) for p in expected[:, 1]]
    assert all(type(p["label"]) is int for p in body["predictions"])
    probabilities = [list(p["probabilities"].values()) for p in body["predictions"]]
    np.testing.assert_allclose(probabilities, expected, rtol=1e-9, atol=1e-12)
    assert list(first["probabilities"]) == ["0", "1"]
    assert (body["model_name"], body["model_version"]) == (registered.name, registered.version)
    assert {(p["model_name"], p["model_version"]) for p in body["predictions"]} == {
        (registered.name, registered.version)
    }


def test_columnar_in_signature_order_equals_records(client: TestClient, registered: RegisteredModel) -> None:
    frame = registered.features.iloc[5:12]
    columnar = {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}
    records = client.post("/predict", json={"instances": registered.instances(5, 7)}).json()
    response = client.post("/predict", json=columnar)
    assert response.status_code == 200, response.text
    answered = response.json()
    ids = [p.pop("request_id") for body in (answered, records) for p in body["predictions"]]
    assert len(set(ids)) == 14  # every prediction gets its own id for /feedback
    assert answered == records


def test_columnar_in_another_order_is_refused_naming_the_order(client: TestClient, registered: RegisteredModel) -> None:
    frame = registered.features.iloc[:2]
    shuffled = list(reversed(frame.columns))
    response = client.post("/predict", json={"columns": shuffled, "data": frame[shuffled].to_numpy().tolist()})
    assert response.status_code == 400
    assert "signature order" in response.json()["detail"][0]["msg"]


def test_json_integers_are_numbers(client: TestClient, registered: RegisteredModel) -> None:
    instance = {name: round(value) for name, value in registered.instances(0, 1)[0].items()}
    assert client.post("/predict", json={"instances": [instance]}).status_code == 200


BAD_VALUES = [
    pytest.param("1.5", "float_type", id="string-number"),
    pytest.param(False, "float_type", id="boolean"),
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
    oversize = client.post("/predict", json={"instances": registered.instances(0, 1) * (limit + 1)})
    assert oversize.status_code == 400
    assert oversize.json()["detail"][0]["type"] == "too_long"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param({"columns": ["mean_radius"], "data": [[1.0]]}, "missing", id="columns-incomplete"),
        pytest.param({"instances": [], "columns": [], "data": []}, "not both", id="both-forms"),
        pytest.param({"columns": "mean_radius", "data": []}, "list of feature names", id="columns-not-list"),
        pytest.param({"columns": [], "data": [[]]}, "missing", id="columns-empty"),
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
    classes = ("0", "1")
    before_count = {c: sample("plinth_prediction_probability_count", **{"class": c}) for c in classes}
    before_classes = sum(sample("plinth_predicted_class_total", **{"class": c}) for c in classes)
    before_range = sample("plinth_out_of_range_total", feature="worst_area")
    extreme = _instance(registered, worst_area=float(registered.features["worst_area"].max()) * 2)
    assert client.post("/predict", json={"instances": [*registered.instances(0, 9), extreme]}).status_code == 200
    after_count = {c: sample("plinth_prediction_probability_count", **{"class": c}) for c in classes}
    assert after_count == {"0": before_count["0"], "1": before_count["1"] + 10}  # binary: the positive class only
    assert sum(sample("plinth_predicted_class_total", **{"class": c}) for c in classes) == before_classes + 10
    assert sample("plinth_out_of_range_total", feature="worst_area") == before_range + 1
    info = {"model_name": registered.name, "model_version": registered.version, "task": "binary", "drift": "on"}
    assert sample("plinth_model_info", **info) == 1


def test_mirrored_copies_are_counted_apart_from_live_requests(client: TestClient, registered: RegisteredModel) -> None:
    body = {"instances": registered.instances(0, 1)}
    before = {code: sample("plinth_mirrored_requests_total", code=code) for code in ("2xx", "4xx")}
    assert client.post("/predict", json=body).status_code == 200
    assert client.post("/predict", json=body, headers={"x-plinth-mirror": "1"}).status_code == 200
    assert (
        client.post("/predict", json=body, headers={"host": "classifier-canary.plinth-shadow:3000"}).status_code == 200
    )
    assert client.post("/predict", json={"instances": []}, headers={"x-plinth-mirror": "1"}).status_code == 400
    after = {code: sample("plinth_mirrored_requests_total", code=code) for code in ("2xx", "4xx")}
    assert after == {"2xx": before["2xx"] + 2, "4xx": before["4xx"] + 1}


def test_openapi_is_31_with_every_feature_in_order(client: TestClient, registered: RegisteredModel) -> None:
    spec = client.get("/docs.json").json()
    assert spec["openapi"] == "3.1.0"
    schemas = spec["components"]["schemas"]
    names = list(registered.features.columns)
    assert list(schemas["Instance"]["properties"]) == names
    assert schemas["Instance"]["required"] == names
    columnar = schemas["PredictRequest"]["oneOf"][1]["properties"]
    assert columnar["columns"]["const"] == names
    assert len(columnar["data"]["items"]["prefixItems"]) == len(names)
    responses = spec["paths"]["/predict"]["post"]["responses"]
    assert set(responses) == {"200", "400", "413", "415", "429", "500", "504"}
    assert schemas["ValidationError"]["properties"]["detail"]["type"] == "array"
    label = {"enum": [0, 1], "description": "1 when probability >= 0.5, else 0."}  # no decision stored: 0.5
    assert schemas["Prediction"]["properties"]["label"] == label


def test_documented_example_request_is_valid_and_answered(
    client: TestClient, service_module: ModuleType, repo_root: Path
) -> None:
    """serving/model_service/example-request.json (the README's curl) fits the default breast-cancer model."""
    body = (repo_root / "serving" / "model_service" / "example-request.json").read_bytes()
    parsed = service_module.PredictRequest.model_validate_json(body)
    assert len(parsed.instances) == 1
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert set(response.json()["predictions"][0]) == {
        "label",
        "probability",
        "probabilities",
        "model_name",
        "model_version",
        "request_id",
    }
