"""The Open Inference Protocol (V2) endpoints of the binary model, in process (`ModelService.to_asgi()`).

Infer goes through /predict's own path: the same answers, validation, request ids (labelled on /feedback),
per-request log cap and rejection counts; protocol errors are `{"error"}` naming the input.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from serving.bench.demo_model import RegisteredModel
from serving.model_service.feedback import parse_id

from .conftest import AUTH


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def v2_request(rows: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    """Return a columnar infer body for `rows` (FP64 inputs, shape [n]); `changes` replace whole inputs by name."""
    inputs: list[dict[str, Any]] = [
        {"name": name, "datatype": "FP64", "shape": [len(rows)], "data": [row[name] for row in rows]}
        for name in rows[0]
    ]
    replaced = [changes.get(str(spec["name"]), spec) for spec in inputs]
    return {"inputs": [spec for spec in replaced if spec is not None]}


@pytest.fixture(scope="module")
def infer(registered: RegisteredModel) -> str:
    return f"/v2/models/{registered.name}/infer"


def test_server_health_and_metadata(client: TestClient, registered: RegisteredModel) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "plinth"
    for path in (f"/v2/models/{registered.name}", f"/v2/models/{registered.name}/versions/{registered.version}"):
        metadata = client.get(path).json()
        assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
            (name, "FP64", [-1]) for name in registered.features.columns
        ]
        assert metadata["versions"] == [registered.version]
        assert [(o["name"], o["datatype"], o["shape"]) for o in metadata["outputs"]] == [
            ("predict", "INT64", [-1]),
            ("predict_proba", "FP64", [-1, 2]),
        ]
        assert json.loads(metadata["outputs"][1]["parameters"]["classes"]) == ["0", "1"]
    assert client.get(f"/v2/models/{registered.name}/ready").json() == {"name": registered.name, "ready": True}


@pytest.mark.parametrize(
    "path", ["/v2/models/other", "/v2/models/other/ready", "/v2/models/{name}/versions/999", "/v2/nothing"]
)
def test_unknown_models_versions_and_paths_are_404(client: TestClient, registered: RegisteredModel, path: str) -> None:
    answer = client.get(path.format(name=registered.name))
    assert answer.status_code == 404
    assert list(answer.json()) == ["error"]
    unknown = client.post("/v2/models/other/infer", json=v2_request(registered.instances(0, 1)))
    assert unknown.status_code == 404
    assert "plinth-test-classifier" in unknown.json()["error"]
    assert client.get(f"/v2/models/{registered.name}/infer").status_code == 405


def test_infer_answers_what_predict_answers(client: TestClient, registered: RegisteredModel, infer: str) -> None:
    rows = registered.instances(0, 20)
    body = v2_request(rows)
    body["id"] = "batch-7"
    body["inputs"][0] = {**body["inputs"][0], "shape": [20, 1], "data": [[v] for v in body["inputs"][0]["data"]]}
    answer = client.post(infer, json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["model_name"], result["model_version"], result["id"]) == (
        registered.name,
        registered.version,
        "batch-7",
    )
    outputs = {o["name"]: o for o in result["outputs"]}
    expected = registered.expected(0, 20)
    assert outputs["predict"]["shape"] == [20]
    assert outputs["predict"]["data"] == [int(p >= 0.5) for p in expected[:, 1]]
    assert outputs["predict_proba"]["shape"] == [20, 2]
    np.testing.assert_allclose(np.reshape(outputs["predict_proba"]["data"], (20, 2)), expected, rtol=1e-9)
    ids = result["parameters"]["request_ids"].split(",")
    assert len(set(ids)) == 20
    assert all(parse_id(i) is not None and i.startswith(f"{registered.version}.") for i in ids)
    only = client.post(infer, json={**v2_request(rows[:2]), "outputs": [{"name": "predict"}]}).json()
    assert [o["name"] for o in only["outputs"]] == ["predict"]
    assert "id" not in only


def test_a_v2_request_id_takes_its_label_on_feedback(
    client: TestClient, registered: RegisteredModel, infer: str
) -> None:
    result = client.post(infer, json=v2_request(registered.instances(3, 1))).json()
    request_id = result["parameters"]["request_ids"]
    label = result["outputs"][0]["data"][0]
    answer = client.post("/feedback", json={"request_id": request_id, "label": label}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] == "accepted"


def test_the_per_request_log_cap_applies(client: TestClient, registered: RegisteredModel, infer: str) -> None:
    """A V2 request is one request to the caps: its rows past PLINTH_LOG_ROWS_PER_REQUEST (100) are not stored."""
    labels = {"model_name": registered.name, "model_version": registered.version, "reason": "request_cap"}
    before = sample("plinth_prediction_store_dropped_total", **labels)
    rows = registered.instances(0, 150)
    assert client.post(infer, json=v2_request(rows)).status_code == 200
    assert sample("plinth_prediction_store_dropped_total", **labels) - before == 50


def _input(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "datatype": "FP64", "shape": [1], "data": [1.0], **fields}


@pytest.mark.parametrize(
    ("changes", "words", "reason"),
    [
        ({"mean_radius": _input("mean_radius", datatype="BYTES")}, ["'mean_radius'", "BYTES", "FP64"], "invalid_value"),
        (
            {"mean_radius": _input("mean_radius", shape=[2])},
            ["'mean_radius'", "shape [2]", "data has 1"],
            "invalid_shape",
        ),
        ({"mean_radius": _input("mean_radius", shape=[1, 2])}, ["'mean_radius'", "[n, 1]"], "invalid_shape"),
        ({"mean_radius": None}, ["'mean_radius'", "missing"], "missing_feature"),
        ({"mean_radius": _input("radius")}, ["'radius'", "not a feature"], "unknown_feature"),
        (
            {"mean_radius": _input("mean_radius", data=["12.5"])},
            ["'mean_radius' row 0", "valid number"],
            "invalid_value",
        ),
        (
            {"mean_radius": _input("mean_radius", data=[1e30])},
            ["'mean_radius' row 0", "less than or equal"],
            "invalid_value",
        ),
        (
            {"mean_radius": _input("mean_radius", data=[[1.0, 2.0]])},
            ["'mean_radius'", "one value, not 2"],
            "invalid_shape",
        ),
    ],
    ids=[
        "datatype",
        "shape-vs-data",
        "shape-2d",
        "missing",
        "unknown",
        "text-for-number",
        "out-of-range",
        "nested-row",
    ],
)
def test_a_refused_input_is_400_naming_it_and_counted(
    client: TestClient, registered: RegisteredModel, infer: str, changes: dict[str, Any], words: list[str], reason: str
) -> None:
    before = sample("plinth_rejected_requests_total", reason=reason)
    answer = client.post(infer, json=v2_request(registered.instances(0, 1), **changes))
    assert answer.status_code == 400, answer.text
    assert list(answer.json()) == ["error"]
    assert all(word in answer.json()["error"] for word in words), answer.json()
    assert sample("plinth_rejected_requests_total", reason=reason) - before == 1


def test_rows_differ_between_inputs_and_requested_outputs_are_checked(
    client: TestClient, registered: RegisteredModel, infer: str
) -> None:
    body = v2_request(registered.instances(0, 2))
    body["inputs"][-1] = {**body["inputs"][-1], "shape": [1], "data": body["inputs"][-1]["data"][:1]}
    uneven = client.post(infer, json=body)
    assert uneven.status_code == 400
    assert "every input has the same rows" in uneven.json()["error"]
    wrong = client.post(infer, json={**v2_request(registered.instances(0, 1)), "outputs": [{"name": "score"}]})
    assert (wrong.status_code, "'score'" in wrong.json()["error"]) == (400, True)
    not_json = client.post(infer, content=b"{", headers={"content-type": "application/json"})
    assert (not_json.status_code, not_json.json()["error"].startswith("body: not valid JSON")) == (400, True)
    binary = client.post(infer, content=b"{}", headers={"inference-header-content-length": "2"})
    assert "binary tensor data is not supported" in binary.json()["error"]


def test_the_guard_covers_the_infer_route(client: TestClient, registered: RegisteredModel, infer: str) -> None:
    """Body cap (413) and content type (415) as on /predict; no Content-Type at all (Triton's client) passes."""
    before = sample("plinth_rejected_requests_total", reason="body_too_large")
    big = client.post(infer, content=b" " * 1_048_577, headers={"content-type": "application/json"})
    assert (big.status_code, list(big.json())) == (413, ["error"])
    assert sample("plinth_rejected_requests_total", reason="body_too_large") - before == 1
    text = client.post(infer, content=b"{}", headers={"content-type": "text/plain"})
    assert text.status_code == 415
    bare = client.post(infer, content=json.dumps(v2_request(registered.instances(0, 1))).encode())
    assert bare.status_code == 200, bare.text
