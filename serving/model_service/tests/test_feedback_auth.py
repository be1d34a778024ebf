"""Who may label, how fast, and what: the attacks on POST /feedback, through the service's own ASGI app.

Labels move live quality, which moves the rollout's live-quality check and `PlinthLiveQualityLow` (a retrain).
Before: any pod that reached /feedback could label its own /predict ids, as fast as it liked, with a label of
up to 64 KiB. Now: a bearer token of a configured client (401 otherwise, nothing read, nothing stored), a
token bucket per client (429 with Retry-After; the other clients unaffected), a 4 KiB body and a label typed
by the model's task. What is stored is read back from the store, and live quality by the exporter's collector.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from serving.bench.demo_model import RegisteredModel
from serving.model_service import settings
from serving.model_service.feedback_route import Refusal, truth_of
from serving.model_service.predictor import ServedTask
from serving.model_service.store import PredictionStore

from .conftest import asgi_client, env_for, refreshed_quality

TOKENS = {name: f"{name}-labelling-token-0123456789" for name in ("alice", "bulk", "other", "typed")}
BURST = 5


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def service_env(model: RegisteredModel, store: Path) -> dict[str, str]:
    return env_for(
        model,
        **{
            settings.ENV_FEEDBACK_TOKENS: ",".join(f"{name}={token}" for name, token in TOKENS.items()),
            settings.ENV_FEEDBACK_RATE: "0.01",  # one label per 100 s once the burst is spent
            settings.ENV_FEEDBACK_BURST: str(BURST),
            settings.ENV_PREDICTION_STORE: str(store),
            settings.ENV_WORKERS: "1",
        },
    )


@pytest.fixture(scope="module")
def binary(registered: RegisteredModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    store = str(tmp_path_factory.mktemp("auth") / "predictions.sqlite")
    with asgi_client(service_env(registered, Path(store))) as served:
        yield served, store


def predicted(served: tuple[ModuleType, TestClient], model: RegisteredModel, rows: int) -> list[dict[str, Any]]:
    """Predict `rows` rows and write them to the store now (as the writer thread would, a moment later)."""
    module, client = served
    response = client.post("/predict", json={"instances": model.instances(0, rows)})
    assert response.status_code == 200, response.text
    module.JUDGE.recorder.flush()
    return list(response.json()["predictions"])


def counted(model: RegisteredModel, result: str) -> float:
    labels = {"model_name": model.name, "model_version": model.version, "result": result}
    return REGISTRY.get_sample_value("plinth_feedback_total", labels) or 0.0


def by_client(client: str, result: str) -> float:
    return REGISTRY.get_sample_value("plinth_feedback_by_client_total", {"client": client, "result": result}) or 0.0


def labelled(store: str, request_id: str) -> bool:
    opened = PredictionStore(store, settings.DEFAULT_FEEDBACK_MAX_AGE_S)
    try:
        found = opened.find(request_id)
    finally:
        opened.close()
    assert found is not None, "the prediction is in the store"
    return found.labelled


def live_rows(store: str, model: RegisteredModel) -> int:
    totals = refreshed_quality(store).totals.get((model.name, model.version))
    return totals.counts.get("correct", 0) if totals else 0


def test_a_label_without_a_clients_token_is_refused_and_changes_nothing(
    binary: tuple[Any, str], registered: RegisteredModel
) -> None:
    served, store = binary
    [prediction] = predicted(served, registered, 1)
    body = {"request_id": prediction["request_id"], "label": 1 - prediction["label"]}  # a wrong label: the attack
    before = {result: counted(registered, result) for result in ("accepted", "unauthenticated", "malformed")}
    attempts = [
        {},
        {"Authorization": "Bearer not-a-token-of-anyone-here"},
        {"Authorization": f"Basic {TOKENS['alice']}"},
        {"Authorization": f"Bearer {TOKENS['alice']}x"},
        {"Authorization": "Bearer "},
    ]
    answers = [served[1].post("/feedback", json=body, headers=headers) for headers in attempts]
    for headers, answer in zip(attempts, answers, strict=True):
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.headers["www-authenticate"].startswith("Bearer"), headers
        assert answer.json()["error"] == "unauthenticated"
        assert answer.json()["detail"].startswith("Authorization:"), answer.text
    assert not labelled(store, prediction["request_id"])
    assert live_rows(store, registered) == 0  # plinth_live_* as the exporter would export them: untouched
    assert counted(registered, "accepted") == before["accepted"]
    assert counted(registered, "malformed") == before["malformed"]
    assert counted(registered, "unauthenticated") - before["unauthenticated"] == len(attempts)

    accepted = served[1].post("/feedback", json=body, headers=bearer("alice"))
    assert accepted.status_code == 200, accepted.text
    assert labelled(store, prediction["request_id"])
    assert live_rows(store, registered) == 1
    assert by_client("alice", "accepted") == 1


def test_a_client_over_its_rate_gets_429_and_the_others_do_not(
    binary: tuple[Any, str], registered: RegisteredModel
) -> None:
    served, store = binary
    predictions = predicted(served, registered, BURST + 2)
    sent = [
        served[1].post("/feedback", json={"request_id": p["request_id"], "label": p["label"]}, headers=bearer("bulk"))
        for p in predictions[: BURST + 1]
    ]
    assert [answer.status_code for answer in sent] == [200] * BURST + [429], [a.text for a in sent]
    refused = sent[-1]
    assert refused.json()["error"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert not labelled(store, predictions[BURST]["request_id"])
    assert by_client("bulk", "rate_limited") == 1
    last = predictions[BURST + 1]
    other = served[1].post("/feedback", json={"request_id": last["request_id"], "label": 0}, headers=bearer("other"))
    assert other.status_code == 200, other.text
    assert labelled(store, last["request_id"])


def test_labels_are_bounded_and_typed_by_the_task(binary: tuple[Any, str], registered: RegisteredModel) -> None:
    served, store = binary
    [prediction] = predicted(served, registered, 1)
    request_id = prediction["request_id"]
    cases: list[tuple[bytes, int, str]] = [
        (json.dumps({"request_id": request_id, "label": "x" * 60_000}).encode(), 413, "body:"),
        (json.dumps({"request_id": request_id, "label": 7}).encode(), 400, "label:"),
        (json.dumps({"request_id": request_id, "label": "1"}).encode(), 400, "label:"),
        (json.dumps({"request_id": request_id, "label": True}).encode(), 400, "label:"),
        (b'{"request_id": "%s", "value": 1e999}' % request_id.encode(), 400, "value:"),  # not for a classifier
    ]
    headers = {"content-type": "application/json", **bearer("typed")}
    for content, status, field in cases:
        answer = served[1].post("/feedback", content=content, headers=headers)
        assert answer.status_code == status, (content[:80], answer.text)
        assert answer.json()["error"] == "malformed"
        assert answer.json()["detail"].startswith(field), answer.text
    assert not labelled(store, request_id)


@pytest.mark.parametrize(
    ("given", "field"),
    [(float("inf"), "value:"), (float("nan"), "value:"), (1e308 * 10, "value:"), ("3.5", "value:"), (True, "value:")],
)
def test_a_regression_value_must_be_a_finite_number(given: Any, field: str) -> None:
    with pytest.raises(Refusal) as refused:
        truth_of(ServedTask("regression", (), False), "value", given)
    assert (refused.value.status, refused.value.detail.split(" ")[0]) == (400, field)


def test_a_label_of_unknown_classes_is_a_short_scalar() -> None:
    unknown = ServedTask("multiclass", (), False)
    assert truth_of(unknown, "label", "cat") == "cat"
    with pytest.raises(Refusal, match="label: at most 256 characters"):
        truth_of(unknown, "label", "x" * 257)
    with pytest.raises(Refusal, match="label: must be a string"):
        truth_of(unknown, "label", {"nested": "x" * 100})
