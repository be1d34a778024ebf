"""Outcomes from the shared store: labels and business values posted to /feedback, summed per version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from serving.experiments.outcomes import read_outcomes
from serving.model_service.feedback_route import Judge, Refusal, read_body
from serving.model_service.predictor import ServedTask
from serving.model_service.recorder import Recorder
from serving.model_service.store import PredictionStore

BINARY = ServedTask("binary", (0, 1), True)
REGRESSION = ServedTask("regression")
MAX_AGE_S = 86_400.0


def predict(store: PredictionStore, version: str, task: ServedTask, answers: list[dict[str, Any]]) -> list[str]:
    recorder = Recorder(store, "m", version, task)
    recorder.stamp(answers)
    assert recorder.flush()
    return [answer["request_id"] for answer in answers]


def post(judge: Judge, **body: Any) -> tuple[int, dict[str, Any]]:
    return judge.decide(json.dumps(body).encode())


def test_labels_and_business_values_are_summed_per_version(tmp_path: Path) -> None:
    store = PredictionStore(str(tmp_path / "p.sqlite"), MAX_AGE_S)
    since = store.now_ms()
    judge = Judge(store, "m", "1", BINARY, MAX_AGE_S)
    answer = {"label": 1, "probabilities": {"0": 0.2, "1": 0.8}}
    ones = predict(store, "1", BINARY, [dict(answer) for _ in range(4)])
    twos = predict(store, "2", BINARY, [dict(answer) for _ in range(2)])
    for request_id, truth in zip(ones + twos, [1, 1, 1, 0, 1, 1], strict=True):
        assert post(judge, request_id=request_id, label=truth)[0] == 200
    for request_id, value in zip(ones[:2] + twos, [10.0, 20.0, 5.0, 7.0], strict=True):
        status, payload = post(judge, request_id=request_id, outcome=value)
        assert status == 200, payload
    # An outcome is one per prediction, like a label, and independent of it.
    assert post(judge, request_id=ones[0], outcome=1.0) == (
        409,
        {"error": "duplicate", "detail": "request_id: this prediction already has its outcome"},
    )
    labels = read_outcomes(store, "m", ["1", "2"], since, "label")
    assert labels.measure == "accuracy"
    assert (labels.of("1").n, labels.of("1").mean, labels.of("2").mean) == (4, 0.75, 1.0)
    values = read_outcomes(store, "m", ["1", "2"], since, "value")
    assert (values.of("1").n, values.of("1").mean, values.of("1").variance) == (2, 15.0, 50.0)
    assert (values.of("2").total, values.of("3").n) == (12.0, 0)
    assert read_outcomes(store, "m", ["1"], store.now_ms() + 1000, "label").of("1").n == 0


def test_a_regressor_is_judged_on_its_absolute_error(tmp_path: Path) -> None:
    store = PredictionStore(str(tmp_path / "p.sqlite"), MAX_AGE_S)
    judge = Judge(store, "m", "1", REGRESSION, MAX_AGE_S)
    ids = predict(store, "1", REGRESSION, [{"prediction": 3.0}, {"prediction": 5.0}])
    for request_id in ids:
        assert post(judge, request_id=request_id, value=4.0)[0] == 200
    outcomes = read_outcomes(store, "m", ["1"], 0, "label")
    assert (outcomes.measure, outcomes.higher_is_better, outcomes.of("1").mean) == ("mean absolute error", False, 1.0)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"request_id": "x", "outcome": "12"}, "outcome: must be a number"),
        ({"request_id": "x", "outcome": 10**400}, "outcome: must be finite"),
        ({"request_id": "x", "outcome": 1, "label": 1}, "label, value, outcome: give exactly one"),
    ],
)
def test_a_bad_outcome_is_refused_naming_the_field(tmp_path: Path, body: dict[str, Any], detail: str) -> None:
    store = PredictionStore(str(tmp_path / "p.sqlite"), MAX_AGE_S)
    if "label" in body:
        with pytest.raises(Refusal, match=detail):
            read_body(json.dumps(body).encode())
        return
    request_id = predict(store, "1", BINARY, [{"label": 1, "probabilities": {"0": 0.2, "1": 0.8}}])[0]
    status, payload = post(Judge(store, "m", "1", BINARY, MAX_AGE_S), **{**body, "request_id": request_id})
    assert (status, payload["detail"]) == (400, detail)
