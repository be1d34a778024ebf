"""Scenario (integration tier): real `bentoml serve` replicas sharing one real PostgreSQL prediction store.

Replicas answer, are all replaced, and a new one that never saw a prediction takes every label; live quality
is read from the store by the exporter's collector. Then the store goes away (a dead port; a database that
refuses connections) and comes back: /predict keeps answering, /feedback answers 503, drops are counted, and
the queue drains. The two outages of one database share one replica (`outage_server`): each reads its
counters as differences from where it began, so either may run first or alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from serving.bench.demo_model import RegisteredModel
from serving.embedded.processes import free_port
from serving.model_service import settings
from serving.model_service.shadow_pairs import read_rows
from serving.model_service.store import PredictionStore
from serving.model_service.tests.conftest import (
    AUTH,
    Server,
    env_for,
    metric,
    refreshed_quality,
    running_server,
    scrape,
)
from serving.rollout.core.joined import join
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


@contextlib.contextmanager
def replicas(env: dict[str, str], homes: list[Path]) -> Iterator[list[Server]]:
    """Start one `bentoml serve` per home side by side, as a Deployment starts its pods; stop them all after."""
    started: list[Server] = []
    try:
        started += [Server(env, home, free_port()) for home in homes]
        for replica in started:
            replica.wait_ready()
        yield started
    finally:
        for replica in started:
            replica.stop()


def test_every_label_joins_once_on_a_replica_that_never_saw_it(
    model: RegisteredModel, database: str, tmp_path: Path
) -> None:
    answered: list[dict[str, Any]] = []
    with replicas(with_store(model, database), [tmp_path / "a", tmp_path / "b"]) as (a, b):  # then both gone
        answered += predict(a, model.instances(0, 6)) + predict(b, model.instances(6, 6))  # (first row, rows)
        # One request and its mirrored copy (Envoy keeps `x-request-id`), answered by two replicas: the
        # cluster's shadow pairing joins their stored rows on PostgreSQL (`shadow_pairs.py`).
        for replica, extra in ((a, {}), (b, {"x-plinth-mirror": "1"})):
            body = {"instances": model.instances(0, 5)}
            headers = {"x-request-id": "shadow-1", **extra}
            assert httpx.post(f"{replica.url}/predict", json=body, headers=headers, timeout=30).status_code == 200
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
    store = PredictionStore(database, 3600)
    rows = read_rows(store, 0)[(model.name, model.version)]
    assert sorted(row.answer["mirrored"] for row in rows) == [False] * 5 + [True] * 5
    paired = join(rows, model.version, model.version, store.now_ms())
    assert (paired.pairs, paired.churned, paired.unpaired) == (5, 0, {})
    store.close()


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


@pytest.fixture(scope="module")
def outage_database(postgres: PostgresServer) -> str:
    return postgres.create_database("feedback_outages")


@pytest.fixture(scope="module")
def outage_server(
    model: RegisteredModel, outage_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One replica on `outage_database` with a 20,000-row queue, for the scenarios that take the store down."""
    env = with_store(model, outage_database, **{settings.ENV_PREDICTION_STORE_BUFFER: "20000"})
    with running_server(env, tmp_path_factory.mktemp("outages")) as server:
        yield server


@pytest.fixture
def outage(postgres: PostgresServer, outage_database: str) -> Iterator[None]:
    """The store comes back after each outage scenario, however it ended."""
    yield
    set_connections(postgres, outage_database, True)


def growth(server: Server, start: dict[str, float], name: str, **labels: str) -> float:
    """Return how much the counter `name{labels}` of `server` grew since the scrape `start`."""
    return metric(scrape(server.url), name, **labels) - metric(start, name, **labels)


def test_the_queue_drains_when_the_store_comes_back(
    model: RegisteredModel, postgres: PostgresServer, outage_database: str, outage_server: Server, outage: None
) -> None:
    server, ident = outage_server, {"model_name": model.name, "model_version": model.version}
    start = scrape(server.url)
    [before] = predict(server, model.instances(0, 1))
    assert send(server, before["request_id"], before["label"]).status_code == 200
    set_connections(postgres, outage_database, False)
    queued = predict(server, model.instances(1, 3))  # answered while the store is down
    down = send(server, queued[0]["request_id"], queued[0]["label"])
    assert (down.status_code, down.json()["error"]) == (503, "store_unavailable")
    set_connections(postgres, outage_database, True)
    assert wait_for(lambda: growth(server, start, "plinth_prediction_store_written_total", **ident) >= 4)
    labelled = [send(server, p["request_id"], p["label"]).status_code for p in queued]
    assert labelled == [200, 200, 200]
    assert growth(server, start, "plinth_prediction_store_dropped_total", **ident, reason="buffer_full") == 0
    assert growth(server, start, "plinth_prediction_store_errors_total", **ident, operation="read") >= 1


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
    model: RegisteredModel, postgres: PostgresServer, outage_database: str, outage_server: Server, outage: None
) -> None:
    """100 requests of 1,000 rows (100,000 answers) once pushed a 20,000-row queue's earlier rows out."""
    rows = (model.instances() * 2)[:1000]
    columns = list(rows[0])
    big = {"columns": columns, "data": [[row[name] for name in columns] for row in rows]}
    server, ident = outage_server, {"model_name": model.name, "model_version": model.version}
    start = scrape(server.url)
    set_connections(postgres, outage_database, False)
    [small] = predict(server, model.instances(0, 1))  # queued: the store is down
    with httpx.Client(timeout=60) as client:
        for _ in range(100):
            answer = client.post(f"{server.url}/predict", json=big)
            assert answer.status_code == 200, answer.text[:300]
    set_connections(postgres, outage_database, True)
    logged = 1 + 100 * 100  # the small request, and the first 100 rows of each big one
    assert wait_for(lambda: growth(server, start, "plinth_prediction_store_written_total", **ident) >= logged)
    joined = send(server, small["request_id"], small["label"])
    assert joined.status_code == 200, joined.text
    assert growth(server, start, "plinth_prediction_store_dropped_total", **ident, reason="buffer_full") == 0
    dropped = growth(server, start, "plinth_prediction_store_dropped_total", **ident, reason="request_cap")
    assert dropped == 100 * 900
