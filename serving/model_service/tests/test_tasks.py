"""Serving per task on real servers: multiclass (wine), regression (diabetes), mixed types with nulls (churn).

Each champion is registered the way the pipeline registers it; its answers must equal the in-process
model's, bad values of every column type must be refused naming the column, and the task's metrics move.
(Real servers, not `to_asgi()`: BentoML registers its own metrics once per process, so one process can host
only one in-process service, the binary one of test_http.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from serving.bench.demo_model import RegisteredModel, register_plain_sklearn

from .conftest import Server, env_for, metric, predict_spread, running_server, scrape

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def wine_server(wine: RegisteredModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(env_for(wine), tmp_path_factory.mktemp("wine")) as live:
        yield live


def post(server: Server, instances: list[dict[str, object]]) -> httpx.Response:
    return httpx.post(f"{server.url}/predict", json={"instances": instances}, timeout=30)


def predict(server: Server, instances: list[dict[str, object]]) -> list[dict[str, Any]]:
    response = post(server, instances)
    assert response.status_code == 200, response.text
    return list(response.json()["predictions"])


def test_multiclass_answers_every_class_and_meters_each(wine_server: Server, wine: RegisteredModel) -> None:
    names = [str(label) for label in wine.task.classes]
    before = scrape(wine_server.url)
    predictions = predict(wine_server, wine.instances(0, 60))
    after = scrape(wine_server.url)
    expected = wine.expected(0, 60)
    assert list(predictions[0]) == ["label", "probabilities", "model_name", "model_version", "request_id"]
    got = np.array([[p["probabilities"][name] for name in names] for p in predictions])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    labels = [wine.task.classes[i] for i in expected.argmax(axis=1)]
    assert [p["label"] for p in predictions] == labels
    assert all(type(p["label"]) is int for p in predictions)
    for name in names:
        observed = "plinth_prediction_probability_count"
        assert metric(after, observed, **{"class": name}) - metric(before, observed, **{"class": name}) == 60
        counted = "plinth_predicted_class_total"
        moved = metric(after, counted, **{"class": name}) - metric(before, counted, **{"class": name})
        assert moved == sum(1 for label in labels if str(label) == name)
    info = {"model_name": wine.name, "model_version": wine.version, "task": "multiclass", "drift": "on"}
    assert metric(after, "plinth_model_info", **info) == 1


def test_regression_answers_values_into_decile_buckets(diabetes_server: Server, diabetes: RegisteredModel) -> None:
    before = scrape(diabetes_server.url)  # the session's server: other modules' requests count too
    predictions = predict(diabetes_server, diabetes.instances(0, 50))
    assert list(predictions[0]) == ["prediction", "model_name", "model_version", "request_id"]
    np.testing.assert_allclose([p["prediction"] for p in predictions], diabetes.expected(0, 50), rtol=1e-9)
    samples = scrape(diabetes_server.url)
    bounds = sorted(float(key.split('le="')[1].split('"')[0]) for key in samples if "prediction_value_bucket" in key)
    assert diabetes.profile is not None
    assert diabetes.profile.target_profile is not None
    assert bounds[:-1] == pytest.approx(diabetes.profile.target_profile.bin_edges, rel=1e-12)
    assert bounds[-1] == float("inf")
    assert metric(samples, "plinth_prediction_value_count") - metric(before, "plinth_prediction_value_count") == 50
    info = {"model_name": diabetes.name, "model_version": diabetes.version, "task": "regression", "drift": "on"}
    assert metric(samples, "plinth_model_info", **info) == 1


def test_mixed_types_with_nulls_equal_the_model(churn_server: Server, churn: RegisteredModel) -> None:
    rows = churn.instances(0, 200)
    assert any(value is None for row in rows for value in row.values())  # the table really has gaps
    predictions = predict(churn_server, rows)
    expected = churn.expected(0, 200)
    np.testing.assert_allclose([p["probability"] for p in predictions], expected[:, 1], rtol=1e-9, atol=1e-12)
    assert [p["label"] for p in predictions] == ["yes" if p >= 0.5 else "no" for p in expected[:, 1]]


def test_nulls_in_optional_columns_and_unseen_categories_are_scored(
    churn_server: Server, churn: RegisteredModel
) -> None:
    before = scrape(churn_server.url)
    row = {**churn.instances(0, 1)[0], "age": None, "income": None, "plan": None, "has_card": None}
    unseen = {**churn.instances(1, 1)[0], "region": "atlantis", "support_calls": 99}
    assert len(predict(churn_server, [row, unseen])) == 2
    after = scrape(churn_server.url)
    missing = "plinth_missing_values_total"
    expected_missing = sum(r["plan"] is None for r in (row, unseen))
    assert metric(after, missing, feature="plan") - metric(before, missing, feature="plan") == expected_missing
    unseen_total = "plinth_unseen_category_total"
    assert metric(after, unseen_total, feature="region") - metric(before, unseen_total, feature="region") == 1
    assert metric(after, "plinth_unseen_category_total", feature="support_calls") >= 1


WRONG = [
    pytest.param("age", "41", "float_type", id="string-for-number"),
    pytest.param("income", True, "float_type", id="bool-for-number"),
    pytest.param("region", 3, "string_type", id="number-for-string"),
    pytest.param("has_card", "yes", "bool_type", id="string-for-bool"),
    pytest.param("has_card", 1, "bool_type", id="number-for-bool"),
    pytest.param("support_calls", 1.5, "int_type", id="fraction-for-integer"),
    pytest.param("support_calls", "3", "int_type", id="string-for-integer"),
    pytest.param("support_calls", True, "int_type", id="bool-for-integer"),
]


@pytest.mark.parametrize(("column", "value", "error_type"), WRONG)
def test_wrong_types_are_refused_naming_the_column(
    churn_server: Server, churn: RegisteredModel, column: str, value: object, error_type: str
) -> None:
    response = post(churn_server, [{**churn.instances(0, 1)[0], column: value}])
    assert response.status_code == 400, response.text
    detail = response.json()["detail"][0]
    assert (detail["type"], detail["loc"]) == (error_type, ["instances", 0, column])


def test_an_integral_number_is_an_integer(churn_server: Server, churn: RegisteredModel) -> None:
    """JSON Schema counts 3.0 as an integer, so the published contract does, and so does the service."""
    as_int, as_float = ({**churn.instances(0, 1)[0], "support_calls": value} for value in (3, 3.0))
    [from_float], [from_int] = predict(churn_server, [as_float]), predict(churn_server, [as_int])
    assert from_float.pop("request_id") != from_int.pop("request_id")
    assert from_float == from_int


def test_missing_and_unknown_columns_are_named(churn_server: Server, churn: RegisteredModel) -> None:
    row = {**churn.instances(0, 1)[0], "colour": "red"}
    del row["plan"]  # optional columns may be null, never absent
    response = post(churn_server, [row])
    assert response.status_code == 400
    assert {(e["type"], e["loc"][-1]) for e in response.json()["detail"]} == {
        ("missing", "plan"),
        ("extra_forbidden", "colour"),
    }


def test_categorical_drift_is_scored(churn_server: Server, churn: RegisteredModel) -> None:
    predict_spread(churn_server.url, [{**row, "region": "islands"} for row in churn.instances(0, 500)])
    samples = scrape(churn_server.url)
    assert metric(samples, "plinth_input_drift_psi", feature="region") > 1.0
    assert metric(samples, "plinth_input_drift_psi", feature="plan") < 0.1


def test_the_same_estimator_through_pyfunc_answers_the_same(
    churn: RegisteredModel, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Logged with plain `mlflow.sklearn.log_model` (no plinth metadata): the pyfunc path, drift off."""
    plain = register_plain_sklearn(
        churn.tracking_uri, "plinth-test-churn-plain", churn.model, churn.features, churn.task
    )
    with running_server(env_for(plain), tmp_path_factory.mktemp("churn-plain")) as live:
        predictions = predict(live, churn.instances(0, 100))
        samples = scrape(live.url)
    np.testing.assert_allclose([p["probability"] for p in predictions], churn.expected(0, 100)[:, 1], rtol=1e-9)
    info = {"model_name": plain.name, "model_version": plain.version, "task": "binary", "drift": "off"}
    assert metric(samples, "plinth_model_info", **info) == 1
    assert not any(key.startswith("plinth_input_drift_psi") for key in samples)
    assert "has no reference profile: input drift is not scored" in live.log_path.read_text()
