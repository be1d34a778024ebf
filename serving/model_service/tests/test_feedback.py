"""Ground-truth feedback on real `bentoml serve` processes: join, refuse, restart, and live quality from the store.

The binary model's shared server runs with two workers here, so a feedback may land on a worker other than
the one that answered its prediction: the store (an SQLite file here) is shared. Live quality is read from
the store by `LiveQuality`, the exporter's collector, as the cluster's one exporter reads it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.bench.demo_model import RegisteredModel
from serving.model_service import settings
from serving.model_service.feedback import new_id, parse_id

from .conftest import AUTH, Server, env_for, metric, refreshed_quality, running_server, scrape

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_workers(registered: RegisteredModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(env_for(registered), tmp_path_factory.mktemp("feedback"), workers=2) as live:
        yield live


def predict(server: Server, instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = httpx.post(f"{server.url}/predict", json={"instances": instances}, timeout=30)
    assert response.status_code == 200, response.text
    return list(response.json()["predictions"])


def send(server: Server, body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/feedback", json=body, headers=AUTH, timeout=30)


def counted(samples: dict[str, float], model: RegisteredModel, result: str, version: str | None = None) -> float:
    labels = {"model_name": model.name, "model_version": version or model.version, "result": result}
    return metric(samples, "plinth_feedback_total", **labels)


def live(setting: str, model: RegisteredModel) -> tuple[dict[str, float], dict[str, int]]:
    """Return the exporter's running sums and counts of `model`'s version, read from the store now."""
    quality = refreshed_quality(setting)
    totals = quality.totals.get((model.name, model.version))
    return (totals.sums, totals.counts) if totals else ({}, {})


def test_labels_join_predictions_and_live_quality_counts_them(
    two_workers: Server, registered: RegisteredModel, prediction_store: Path
) -> None:
    before = scrape(two_workers.url)
    assert counted(before, registered, "late") == 0  # the series exist before any feedback
    sums_before, counts_before = live(str(prediction_store), registered)
    predictions = predict(two_workers, registered.instances(0, 20))
    labels = [p["label"] if i < 15 else 1 - p["label"] for i, p in enumerate(predictions)]  # 15 of 20 right
    for prediction, label in zip(predictions, labels, strict=True):
        response = send(two_workers, {"request_id": prediction["request_id"], "label": label})
        assert response.status_code == 200, response.text
        assert response.json() == {
            "request_id": prediction["request_id"],
            "result": "accepted",
            "model_version": registered.version,
        }
    after = scrape(two_workers.url)
    sums, counts = live(str(prediction_store), registered)
    assert counts["correct"] - counts_before.get("correct", 0) == 20
    assert sums["correct"] - sums_before.get("correct", 0) == 15
    losses = [
        -math.log(max(p["probabilities"][str(label)], 1e-15)) for p, label in zip(predictions, labels, strict=True)
    ]
    assert sums["log_loss"] - sums_before.get("log_loss", 0) == pytest.approx(sum(losses), rel=1e-9)
    assert counted(after, registered, "accepted") - counted(before, registered, "accepted") == 20
    ident = {"model_name": registered.name, "model_version": registered.version}
    assert metric(after, "plinth_prediction_store_written_total", **ident) >= 20
    assert "plinth_live_correct_count" not in str(after)  # one component computes live quality, not the pods


def test_refusals_have_their_status_reason_and_count(two_workers: Server, registered: RegisteredModel) -> None:
    [prediction] = predict(two_workers, registered.instances(0, 1))
    request_id = prediction["request_id"]
    version, issued = parse_id(request_id) or ("", 0)
    before = scrape(two_workers.url)
    cases: list[tuple[object, int, str, str]] = [
        ({"label": 1}, 400, "malformed", "request_id:"),
        ({"request_id": request_id, "label": 1, "value": 1.0}, 400, "malformed", "label, value, outcome:"),
        ({"request_id": request_id, "label": "yes"}, 400, "malformed", "label:"),
        ({"request_id": request_id, "label": 1, "note": "x"}, 400, "malformed", "note:"),
        ({"request_id": new_id(version, issued - 60_000), "label": 1}, 404, "unknown", "request_id:"),
        ({"request_id": "no-such-id", "label": 1}, 404, "unknown", "request_id:"),
        ({"request_id": request_id, "label": 0}, 200, "accepted", ""),
        ({"request_id": request_id, "label": 0}, 409, "duplicate", "request_id:"),
        # A business value (A/B experiments' outcome): one per prediction, beside its label.
        ({"request_id": request_id, "outcome": 12.5}, 200, "accepted", ""),
        ({"request_id": request_id, "outcome": 3}, 409, "duplicate", "request_id:"),
    ]
    for body, status, reason, field in cases:
        response = send(two_workers, body)
        assert response.status_code == status, (body, response.text)
        if status != 200:
            assert response.json()["error"] == reason
            assert response.json()["detail"].startswith(field), response.text
    json_type = {"content-type": "application/json", **AUTH}
    not_json = httpx.post(f"{two_workers.url}/feedback", content=b"{", headers=json_type)
    assert (not_json.status_code, not_json.json()["error"]) == (400, "malformed")
    assert (
        httpx.post(
            f"{two_workers.url}/feedback", content=b"x", headers={"content-type": "text/plain", **AUTH}
        ).status_code
        == 415
    )
    assert httpx.get(f"{two_workers.url}/feedback").status_code == 405
    after = scrape(two_workers.url)
    expected = {"malformed": 6, "unknown": 2, "accepted": 2, "duplicate": 2}
    for result, count in expected.items():
        assert counted(after, registered, result) - counted(before, registered, result) == count, result


def test_labels_survive_a_restart_and_old_predictions_are_late(registered: RegisteredModel, tmp_path: Path) -> None:
    own = {settings.ENV_PREDICTION_STORE: str(tmp_path / "store.sqlite")}
    with running_server(env_for(registered, **own), tmp_path / "first") as server:
        ids = [prediction["request_id"] for prediction in predict(server, registered.instances(0, 3))]
        assert send(server, {"request_id": ids[0], "label": 1}).status_code == 200
    # Restarted on the same store, with every prediction now too old to label.
    with running_server(env_for(registered, **own, PLINTH_FEEDBACK_MAX_AGE="0"), tmp_path / "second") as server:
        assert send(server, {"request_id": ids[0], "label": 1}).status_code == 409  # its label survived
        late = send(server, {"request_id": ids[1], "label": 1})
        assert (late.status_code, late.json()["error"]) == (410, "late")
        assert late.json()["detail"] == "request_id: the prediction is older than 0 s"
        assert counted(scrape(server.url), registered, "late") == 1


def test_regression_feedback_moves_mae(
    diabetes_server: Server, diabetes: RegisteredModel, prediction_store: Path
) -> None:
    sums_before, counts_before = live(str(prediction_store), diabetes)  # the session's server and store
    predictions = predict(diabetes_server, diabetes.instances(0, 5))
    truths = [100.0, 150.5, 200.0, 80.0, 120.0]
    assert send(diabetes_server, {"request_id": predictions[0]["request_id"], "label": 1}).status_code == 400
    for prediction, truth in zip(predictions, truths, strict=True):
        assert send(diabetes_server, {"request_id": prediction["request_id"], "value": truth}).status_code == 200
    sums, counts = live(str(prediction_store), diabetes)
    assert counts["abs_error"] - counts_before.get("abs_error", 0) == 5
    assert counts.get("correct", 0) - counts_before.get("correct", 0) == 0
    error = sum(abs(p["prediction"] - t) for p, t in zip(predictions, truths, strict=True))
    assert sums["abs_error"] - sums_before.get("abs_error", 0) == pytest.approx(error, rel=1e-9)
    # The squared errors' sum: the variance of the rollout's anytime-valid MAE comparison (rollout core/mae.py).
    squares = sum((p["prediction"] - t) ** 2 for p, t in zip(predictions, truths, strict=True))
    assert counts["squared_error"] - counts_before.get("squared_error", 0) == 5
    assert sums["squared_error"] - sums_before.get("squared_error", 0) == pytest.approx(squares, rel=1e-9)


def test_feedback_off_answers_404_and_stores_nothing(registered: RegisteredModel, tmp_path: Path) -> None:
    off = {settings.ENV_FEEDBACK: "off", settings.ENV_PREDICTION_STORE: str(tmp_path / "store.sqlite")}
    with running_server(env_for(registered, **off), tmp_path / "home") as server:
        [prediction] = predict(server, registered.instances(0, 1))
        response = send(server, {"request_id": prediction["request_id"], "label": 1})
    assert (response.status_code, response.json()["error"]) == (404, "disabled")
    assert not (tmp_path / "store.sqlite").exists()
