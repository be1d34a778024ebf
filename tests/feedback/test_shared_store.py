"""Scenario (integration tier): real `bentoml serve` replicas sharing one real PostgreSQL prediction store.

Replicas answer, are all replaced, and a new one that never saw a prediction takes every label; live quality
is read from the store by the exporter's collector. Then the store goes away (a dead port; a database that
refuses connections) and comes back: /predict keeps answering, /feedback answers 503, drops are counted, and
the queue drains.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from serving.bench.demo_model import RegisteredModel
from serving.embedded.processes import free_port
from serving.model_service import settings
from serving.model_service.tests.conftest import (
    AUTH,
    Server,
    env_for,
    metric,
    refreshed_quality,
    running_server,
    scrape,
)
from tests.engines import PostgresServer

pytestmark = pytest.mark.integration


def predict(server: Server, instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = httpx.post(f"{server.url}/predict", json={"instances": instances}, timeout=30)
    assert response.status_code == 200, response.text
    return list(response.json()["predictions"])


def send(server: Server, request_id: str, label: Any) -> httpx.Response:
    body = {"request_id": request_id, "label": label}
    return httpx.post(f"{server.url}/feedback", json=body, headers=AUTH, timeout=30)


@pytest.fixture
def database(postgres: PostgresServer, request: pytest.FixtureRequest) -> str:
    return postgres.create_database(f"feedback_{request.node.name[:40].lower()}")


def with_store(model: RegisteredModel, store: str, **extra: str) -> dict[str, str]:
    return env_for(model, **{settings.ENV_PREDICTION_STORE: store, **extra})


def test_every_label_joins_once_on_a_replica_that_never_saw_it(
    model: RegisteredModel, database: str, tmp_path: Path
) -> None:
    answered: list[dict[str, Any]] = []
    for name, rows in (("a", (0, 6)), ("b", (6, 6))):  # (first row, rows)  # two replicas, then both gone
        with running_server(with_store(model, database), tmp_path / name) as replica:
            answered += predict(replica, model.instances(*rows))
    with running_server(with_store(model, database), tmp_path / "c") as fresh:
        truths = [p["label"] if i % 3 else 1 - p["label"] for i, p in enumerate(answered)]  # 8 of 12 right
        accepted = [send(fresh, p["request_id"], truth) for p, truth in zip(answered, truths, strict=True)]
        again = [send(fresh, p["request_id"], truth) for p, truth in zip(answered, truths, strict=True)]
        counts = scrape(fresh.url)
    assert [response.status_code for response in accepted] == [200] * 12, [r.text for r in accepted]
    assert [(r.status_code, r.json()["error"]) for r in again] == [(409, "duplicate")] * 12
    ident = {"model_name": model.name, "model_version": model.version}
    assert metric(counts, "plinth_feedback_total", **ident, result="accepted") == 12
    quality = refreshed_quality(database)
    totals = quality.totals[(model.name, model.version)]
    assert (totals.counts["correct"], totals.sums["correct"]) == (12, 8.0)  # each label counted exactly once
    [window] = [w for by, _, w in quality.windowed if by == "label_time"]
    assert window.rows == 12


def test_a_dead_store_costs_no_prediction_and_drops_are_counted(model: RegisteredModel, tmp_path: Path) -> None:
    dead = f"postgresql://plinth:x@127.0.0.1:{free_port()}/none"
    env = with_store(model, dead, **{settings.ENV_PREDICTION_STORE_BUFFER: "2"})
    with running_server(env, tmp_path) as server:
        answers = predict(server, model.instances(0, 5))
        refused = send(server, answers[0]["request_id"], answers[0]["label"])
        samples = scrape(server.url)
    assert len(answers) == 5
    assert refused.status_code == 503
    assert refused.json()["error"] == "store_unavailable"
    ident = {"model_name": model.name, "model_version": model.version}
    assert metric(samples, "plinth_prediction_store_dropped_total", **ident, reason="buffer_full") == 3
    assert metric(samples, "plinth_prediction_store_errors_total", **ident, operation="read") == 1


def set_connections(postgres: PostgresServer, database: str, allowed: bool) -> None:
    """Let a database take connections, or refuse them and end the ones it has (the store is down)."""
    name = database.rsplit("/", 1)[1]
    with psycopg.connect(postgres.dsn("postgres"), autocommit=True) as connection:
        connection.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


@pytest.fixture
def outage(postgres: PostgresServer, database: str) -> Iterator[None]:
    yield
    set_connections(postgres, database, True)


def test_the_queue_drains_when_the_store_comes_back(
    model: RegisteredModel,
    postgres: PostgresServer,
    database: str,
    outage: None,
    tmp_path: Path,
) -> None:
    with running_server(with_store(model, database), tmp_path) as server:
        [before] = predict(server, model.instances(0, 1))
        assert send(server, before["request_id"], before["label"]).status_code == 200
        set_connections(postgres, database, False)
        queued = predict(server, model.instances(1, 3))  # answered while the store is down
        down = send(server, queued[0]["request_id"], queued[0]["label"])
        assert (down.status_code, down.json()["error"]) == (503, "store_unavailable")
        set_connections(postgres, database, True)
        ident = {"model_name": model.name, "model_version": model.version}
        assert wait_for(lambda: metric(scrape(server.url), "plinth_prediction_store_written_total", **ident) >= 4)
        labelled = [send(server, p["request_id"], p["label"]).status_code for p in queued]
        samples = scrape(server.url)
    assert labelled == [200, 200, 200]
    assert metric(samples, "plinth_prediction_store_dropped_total", **ident, reason="buffer_full") == 0
    assert metric(samples, "plinth_prediction_store_errors_total", **ident, operation="read") >= 1


def wait_for(condition: Any, timeout: float = 30.0) -> bool:
    """Poll `condition` until it holds (the writer retries with back-off up to 5 s)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_big_requests_while_the_store_is_down_evict_no_earlier_prediction(
    model: RegisteredModel, postgres: PostgresServer, database: str, outage: None, tmp_path: Path
) -> None:
    """100 requests of 1,000 rows (100,000 answers) once pushed a 20,000-row queue's earlier rows out."""
    rows = (model.instances() * 2)[:1000]
    columns = list(rows[0])
    big = {"columns": columns, "data": [[row[name] for name in columns] for row in rows]}
    env = with_store(model, database, **{settings.ENV_PREDICTION_STORE_BUFFER: "20000"})
    with running_server(env, tmp_path) as server:
        set_connections(postgres, database, False)
        [small] = predict(server, model.instances(0, 1))  # queued: the store is down
        for _ in range(100):
            answer = httpx.post(f"{server.url}/predict", json=big, timeout=60)
            assert answer.status_code == 200, answer.text[:300]
        set_connections(postgres, database, True)
        ident = {"model_name": model.name, "model_version": model.version}
        logged = 1 + 100 * 100  # the small request, and the first 100 rows of each big one
        assert wait_for(lambda: metric(scrape(server.url), "plinth_prediction_store_written_total", **ident) >= logged)
        joined = send(server, small["request_id"], small["label"])
        samples = scrape(server.url)
    assert joined.status_code == 200, joined.text
    assert metric(samples, "plinth_prediction_store_dropped_total", **ident, reason="buffer_full") == 0
    assert metric(samples, "plinth_prediction_store_dropped_total", **ident, reason="request_cap") == 100 * 900
