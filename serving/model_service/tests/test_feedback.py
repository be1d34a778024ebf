"""Ground-truth feedback on real `bentoml serve` processes: join, refuse, bound, restart, and live metrics.

The binary model's shared server runs with two workers here, so a feedback may land on a worker other than
the one that logged its prediction: the log is shared through its file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.bench.demo_model import RegisteredModel
from serving.embedded.processes import free_port
from serving.model_service import settings
from serving.model_service.feedback import new_id, parse_id
from serving.model_service.feedback_route import FORWARDED_HEADER

from .conftest import Server, env_for, metric, running_server, scrape

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
    return httpx.post(f"{server.url}/feedback", json=body, timeout=30)


def counted(samples: dict[str, float], model: RegisteredModel, result: str, version: str | None = None) -> float:
    labels = {"model_name": model.name, "model_version": version or model.version, "result": result}
    return metric(samples, "plinth_feedback_total", **labels)


def test_labels_join_predictions_and_move_live_accuracy(two_workers: Server, registered: RegisteredModel) -> None:
    before = scrape(two_workers.url)
    assert counted(before, registered, "late") == 0  # the series exist before any feedback
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
    ident = {"model_name": registered.name, "model_version": registered.version}
    assert (
        metric(after, "plinth_live_correct_count", **ident) - metric(before, "plinth_live_correct_count", **ident) == 20
    )
    assert metric(after, "plinth_live_correct_sum", **ident) - metric(before, "plinth_live_correct_sum", **ident) == 15
    losses = [
        -math.log(max(p["probabilities"][str(label)], 1e-15)) for p, label in zip(predictions, labels, strict=True)
    ]
    moved = metric(after, "plinth_live_log_loss_sum", **ident) - metric(before, "plinth_live_log_loss_sum", **ident)
    assert moved == pytest.approx(sum(losses), rel=1e-9)
    assert counted(after, registered, "accepted") - counted(before, registered, "accepted") == 20
    assert metric(after, "plinth_prediction_log_rows", **ident) >= 20


def test_refusals_have_their_status_reason_and_count(two_workers: Server, registered: RegisteredModel) -> None:
    [prediction] = predict(two_workers, registered.instances(0, 1))
    request_id = prediction["request_id"]
    version, replica, issued = parse_id(request_id) or ("", "", 0)
    before = scrape(two_workers.url)
    cases: list[tuple[object, int, str, str]] = [
        ({"label": 1}, 400, "malformed", "request_id:"),
        ({"request_id": request_id, "label": 1, "value": 1.0}, 400, "malformed", "label, value:"),
        ({"request_id": request_id, "label": "yes"}, 400, "malformed", "label:"),
        ({"request_id": request_id, "label": 1, "note": "x"}, 400, "malformed", "note:"),
        ({"request_id": new_id(version, replica, issued + 1), "label": 1}, 404, "unknown", "request_id:"),
        ({"request_id": "no-such-id", "label": 1}, 404, "unknown", "request_id:"),
        ({"request_id": new_id(version, "00000000", issued), "label": 1}, 421, "misdirected", "request_id:"),
        ({"request_id": request_id, "label": 0}, 200, "accepted", ""),
        ({"request_id": request_id, "label": 0}, 409, "duplicate", "request_id:"),
    ]
    for body, status, reason, field in cases:
        response = send(two_workers, body)
        assert response.status_code == status, (body, response.text)
        if status != 200:
            assert response.json()["error"] == reason
            assert response.json()["detail"].startswith(field), response.text
    not_json = httpx.post(f"{two_workers.url}/feedback", content=b"{", headers={"content-type": "application/json"})
    assert (not_json.status_code, not_json.json()["error"]) == (400, "malformed")
    assert (
        httpx.post(f"{two_workers.url}/feedback", content=b"x", headers={"content-type": "text/plain"}).status_code
        == 415
    )
    assert httpx.get(f"{two_workers.url}/feedback").status_code == 405
    after = scrape(two_workers.url)
    expected = {"malformed": 6, "unknown": 2, "misdirected": 1, "accepted": 1, "duplicate": 1}
    for result, count in expected.items():
        assert counted(after, registered, result) - counted(before, registered, result) == count, result


def test_full_log_evicts_oldest_and_survives_a_restart(registered: RegisteredModel, tmp_path: Path) -> None:
    bounded = {settings.ENV_PREDICTION_LOG_DIR: str(tmp_path / "log"), settings.ENV_PREDICTION_LOG_MAX_ROWS: "3"}
    with running_server(env_for(registered, **bounded), tmp_path / "first") as server:
        ids = [predict(server, [row])[0]["request_id"] for row in registered.instances(0, 4)]
        samples = scrape(server.url)
        ident = {"model_name": registered.name, "model_version": registered.version}
        assert metric(samples, "plinth_prediction_log_evicted_total", **ident, reason="rows") == 1
        assert metric(samples, "plinth_prediction_log_rows", **ident) == 3
        evicted = send(server, {"request_id": ids[0], "label": 1})
        assert (evicted.status_code, evicted.json()["error"]) == (410, "late")
        assert send(server, {"request_id": ids[1], "label": 1}).status_code == 200
        assert counted(scrape(server.url), registered, "late") == 1
    # Restarted on the same directory, with every prediction now too old to label.
    with running_server(env_for(registered, **bounded, PLINTH_FEEDBACK_MAX_AGE="0"), tmp_path / "second") as server:
        assert metric(scrape(server.url), "plinth_prediction_log_rows", **ident) == 3
        assert send(server, {"request_id": ids[1], "label": 1}).status_code == 409  # its label survived
        late = send(server, {"request_id": ids[2], "label": 1})
        assert (late.status_code, late.json()["error"]) == (410, "late")
        assert late.json()["detail"] == "request_id: the prediction is older than 0 s"


def test_regression_feedback_moves_mae(diabetes: RegisteredModel, tmp_path: Path) -> None:
    with running_server(env_for(diabetes), tmp_path) as server:
        predictions = predict(server, diabetes.instances(0, 5))
        truths = [100.0, 150.5, 200.0, 80.0, 120.0]
        assert send(server, {"request_id": predictions[0]["request_id"], "label": 1}).status_code == 400
        for prediction, truth in zip(predictions, truths, strict=True):
            assert send(server, {"request_id": prediction["request_id"], "value": truth}).status_code == 200
        samples = scrape(server.url)
    ident = {"model_name": diabetes.name, "model_version": diabetes.version}
    assert metric(samples, "plinth_live_absolute_error_count", **ident) == 5
    error = sum(abs(p["prediction"] - t) for p, t in zip(predictions, truths, strict=True))
    assert metric(samples, "plinth_live_absolute_error_sum", **ident) == pytest.approx(error, rel=1e-9)


def test_feedback_off_answers_404_and_logs_nothing(registered: RegisteredModel, tmp_path: Path) -> None:
    off = {settings.ENV_FEEDBACK: "off", settings.ENV_PREDICTION_LOG_DIR: str(tmp_path / "log")}
    with running_server(env_for(registered, **off), tmp_path / "home") as server:
        [prediction] = predict(server, registered.instances(0, 1))
        response = send(server, {"request_id": prediction["request_id"], "label": 1})
    assert (response.status_code, response.json()["error"]) == (404, "disabled")
    assert not (tmp_path / "log").exists()


def test_a_label_that_reaches_another_replica_is_forwarded_to_the_one_that_logged_it(
    registered: RegisteredModel, tmp_path: Path
) -> None:
    """Two pods, as the chart runs them: each logs its own predictions, and ids carry the pod's address."""
    port = free_port()
    pods: dict[str, Server] = {}
    with ExitStack() as stack:
        for address in ("127.0.0.1", "127.0.0.2"):  # two loopback addresses, one port: two pods' view
            env = env_for(
                registered,
                **{
                    settings.ENV_PREDICTION_LOG_DIR: str(tmp_path / address / "log"),
                    settings.ENV_POD_IP: address,
                    settings.ENV_PEER_PORT: str(port),
                },
            )
            pods[address] = stack.enter_context(running_server(env, tmp_path / address, host=address, port=port))
        first, second = pods["127.0.0.1"], pods["127.0.0.2"]
        [answered, lost] = predict(second, registered.instances(0, 2))
        assert (parse_id(answered["request_id"]) or ("", "", 0))[1] == "7f000002"  # 127.0.0.2 in hex
        ident = {"model_name": registered.name, "model_version": registered.version}
        before = {name: scrape(pod.url) for name, pod in pods.items()}

        accepted = send(first, {"request_id": answered["request_id"], "label": answered["label"]})
        again = send(first, {"request_id": answered["request_id"], "label": answered["label"]})

        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["result"] == "accepted"
        assert (again.status_code, again.json()["error"]) == (409, "duplicate")
        after = {name: scrape(pod.url) for name, pod in pods.items()}
        moved = {
            name: metric(after[name], "plinth_live_correct_count", **ident)
            - metric(before[name], "plinth_live_correct_count", **ident)
            for name in pods
        }
        assert moved == {"127.0.0.1": 0, "127.0.0.2": 1}  # scored where it was logged, counted once
        assert counted(after["127.0.0.1"], registered, "accepted") == counted(
            before["127.0.0.1"], registered, "accepted"
        )

        second.stop()  # the pod is gone, and its log with it
        gone = send(first, {"request_id": lost["request_id"], "label": lost["label"]})
        assert (gone.status_code, gone.json()["error"]) == (410, "late"), gone.text
        assert "does not answer" in gone.json()["detail"]
        forwarded_once = httpx.post(
            f"{first.url}/feedback",
            json={"request_id": lost["request_id"], "label": lost["label"]},
            headers={FORWARDED_HEADER: "1"},
        )
        assert (forwarded_once.status_code, forwarded_once.json()["error"]) == (421, "misdirected")  # no loops
