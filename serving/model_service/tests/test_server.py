"""Integration tier: real `bentoml serve` processes on 127.0.0.1 against real registered models.

The main server runs with the default worker count (one per CPU: two here), as `make serve` and the
chart run it, so every metric read below is the multiprocess aggregate across workers.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from serving.bench.demo_model import RegisteredModel, register_unsigned_copy
from serving.model_service import registry, settings

from .conftest import (
    Server,
    env_for,
    free_port,
    metric,
    predict_spread,
    running_server,
    scrape,
    serve_command,
    server_env,
    total,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def workers_server(registered: RegisteredModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The binary model served with the default worker count (PLINTH_WORKERS unset)."""
    # Each worker scores drift once its window spans 5 requests (this test is about aggregating workers, not
    # about the minimum, which test_drift_caps.py tests).
    env = env_for(registered, **{settings.ENV_DRIFT_MIN_REQUESTS: "5"})
    with running_server(env, tmp_path_factory.mktemp("workers"), workers=None) as live:
        yield live


def predict(server: Server, instances: list[dict[str, object]], client: httpx.Client | None = None) -> httpx.Response:
    return (client or httpx).post(f"{server.url}/predict", json={"instances": instances}, timeout=30)


def test_predictions_equal_in_process_model(server: Server, registered: RegisteredModel) -> None:
    response = predict(server, registered.instances(100, 60))
    assert response.status_code == 200, response.text
    got = np.array([p["probability"] for p in response.json()["predictions"]])
    np.testing.assert_allclose(got, registered.expected(100, 60)[:, 1], rtol=1e-9, atol=1e-12)


def test_concurrent_single_rows_are_batched_and_correct(server: Server, registered: RegisteredModel) -> None:
    rows = registered.instances(0, 64)
    expected = registered.expected(0, 64)[:, 1]
    results: dict[int, float] = {}

    def one(index: int) -> None:
        body = predict(server, [rows[index]]).json()
        results[index] = body["predictions"][0]["probability"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(rows))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    np.testing.assert_allclose([results[i] for i in range(len(rows))], expected, rtol=1e-9)


def test_metrics_move_with_requests(server: Server, registered: RegisteredModel) -> None:
    before = scrape(server.url)
    info = {"model_name": registered.name, "model_version": registered.version, "task": "binary", "drift": "on"}
    assert metric(before, "plinth_model_info", **info) == 1
    # Registered by plinth's register step: signed, and checked against the key beside the store at start.
    verified = {"model_name": registered.name, "model_version": registered.version, "result": "verified"}
    assert metric(before, "plinth_model_verification", **verified) == 1
    rows = registered.instances(0, 20)
    for start in range(0, 20, 5):
        assert predict(server, rows[start : start + 5]).status_code == 200
    assert predict(server, []).status_code == 400
    after = scrape(server.url)
    ok_requests = r'bentoml_service_request_total\{.*endpoint="/predict".*http_response_code="200".*\}'
    assert total(after, ok_requests) - total(before, ok_requests) == 4
    count = 'plinth_prediction_probability_count{class="1"}'
    assert after[count] - before.get(count, 0.0) == 20
    bucket = 'plinth_prediction_probability_bucket{class="1",le="1.0"}'
    assert after[bucket] - before.get(bucket, 0.0) == 20
    below = 'plinth_prediction_probability_bucket{class="1",le="0.5"}'
    negatives = sum(1 for p in registered.expected(0, 20)[:, 1] if p <= 0.5)
    assert after[below] - before.get(below, 0.0) == negatives
    classes = r"plinth_predicted_class_total\{.*\}"
    assert total(after, classes) - total(before, classes) == 20
    batch = r'plinth_rejected_requests_total\{reason="batch_size"\}'
    assert total(after, batch) - total(before, batch) == 1
    fast = r'bentoml_service_request_duration_seconds_bucket\{.*endpoint="/predict".*le="10.0".*\}'
    assert total(after, fast) - total(before, fast) == 5


def test_drift_gauge_rises_with_shifted_inputs(server: Server, registered: RegisteredModel) -> None:
    features = registered.features
    normal = features.sample(500, replace=True, random_state=1)
    predict_spread(server.url, normal.to_dict(orient="records"))  # 50 requests of 10 rows: a full window
    calm = scrape(server.url)
    shifted = normal + features.std() * 3
    predict_spread(server.url, shifted.to_dict(orient="records"))
    after = scrape(server.url)
    assert 'plinth_input_drift_psi{feature="mean_radius"}' in calm, "the window spans enough requests to score"
    assert total(calm, r'plinth_input_drift_psi\{feature="mean_radius"\}') < 0.1
    assert total(after, r'plinth_input_drift_psi\{feature="mean_radius"\}') > 1.0
    assert total(after, r'plinth_out_of_range_total\{feature="mean_radius"\}') > 0


def test_default_workers_aggregate_their_metrics(workers_server: Server, registered: RegisteredModel) -> None:
    """One worker per CPU, each with its own counters and drift window: /metrics adds the counts up and
    reports one drift value per feature (the largest live one)."""
    if settings.available_cpus() < 2:
        pytest.skip("one CPU: the default is one worker, nothing to aggregate")
    rows = registered.instances()
    chunks = [rows[start : start + 60] for start in range(0, len(rows) - 60, 60)]
    sent = 0
    # Fresh connections, many at once: the kernel spreads them over the workers' shared listening socket.
    for round_ in range(6):
        clients = [httpx.Client() for _ in range(8)]
        bodies = [chunks[(round_ * 8 + index) % len(chunks)] for index in range(8)]
        threads = [
            threading.Thread(target=predict, args=(workers_server, body, c))
            for body, c in zip(bodies, clients, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for client in clients:
            client.close()
        sent += sum(len(body) for body in bodies)
    samples = scrape(workers_server.url)
    batches = re.compile(r'bentoml_service_adaptive_batch_size_count\{.*worker_index="(\d+)".*\}')
    busy = {found.group(1) for key, value in samples.items() if value and (found := batches.fullmatch(key))}
    assert len(busy) == settings.available_cpus(), busy
    assert total(samples, r"plinth_predicted_class_total\{.*\}") == sent
    assert samples['plinth_prediction_probability_count{class="1"}'] == sent
    drift = [key for key in samples if key.startswith('plinth_input_drift_psi{feature="mean_radius"')]
    assert len(drift) == 1, drift  # one aggregated series, not one per worker
    assert samples[drift[0]] < 0.25  # every window holds only training-like rows
    info = {"model_name": registered.name, "model_version": registered.version, "task": "binary", "drift": "on"}
    assert metric(samples, "plinth_model_info", **info) == 1


def test_unknown_model_exits_with_one_clear_line(registered: RegisteredModel, tmp_path: Path) -> None:
    env = server_env(tmp_path, env_for(registered, **{settings.ENV_MODEL_NAME: "no-such-model"}))
    result = subprocess.run(
        serve_command(free_port()), env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("plinth model service:")]
    assert len(lines) == 1
    assert "models:/no-such-model@champion" in lines[0]


def predict_in_flight(url: str) -> bool:
    """Return whether the service reports a /predict request in progress; a failed scrape says "not yet".

    (Once, on a loaded CI machine, a scrape in the first second after start answered a bare 500: BentoML's
    timeout middleware swallows an exception raised before any response. The poll goes on past it.)
    """
    try:
        return bool(total(scrape(url), r"bentoml_service_request_in_progress\{.*/predict.*\}"))
    except httpx.HTTPStatusError:
        return False


def test_overload_is_429_and_timeout_is_504(registered: RegisteredModel, tmp_path: Path) -> None:
    env = env_for(
        registered,
        **{
            settings.ENV_CHAOS_LATENCY_MS: "3000",
            settings.ENV_TIMEOUT_S: "1",
            settings.ENV_MAX_CONCURRENCY: "1",
        },
    )
    row = registered.instances(0, 1)
    with running_server(env, tmp_path) as slow:
        statuses: list[int] = []
        first = threading.Thread(target=lambda: statuses.append(predict(slow, row).status_code))
        first.start()
        deadline = 50
        while deadline and not predict_in_flight(slow.url):
            deadline -= 1
            threading.Event().wait(0.05)
        second = predict(slow, row)
        first.join()
        assert second.status_code == 429
        assert set(second.json()) == {"error"}
        assert statuses == [504]
        assert httpx.get(f"{slow.url}/readyz", timeout=5).status_code == 200


def test_unloadable_model_never_becomes_ready(registered: RegisteredModel, tmp_path: Path) -> None:
    """A version whose model file cannot be read: workers fail at start, /readyz never answers 200.

    (BentoML's arbiter restarts failed workers, so the process stays up unready; exiting is fine too.) /readyz
    is polled from the start until a worker failed and its restart failed again, or the process exited.
    """
    # An unsigned copy (signed files registered as another version are refused before loading, which is
    # not what this test is about): it loads unverified, and its model file is then broken.
    broken = register_unsigned_copy(registered.tracking_uri, registered.name, registered.version, registered.name)
    env = env_for(registered, **{settings.ENV_MODEL_VERSION: broken})
    local_dir = registry.fetch(settings.Settings.from_env(env)).local_dir
    (local_dir / "model.skops").write_bytes(b"not a skops file")
    server = Server(env, tmp_path, free_port())
    answers: list[int | None] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            answers.append(status_of(f"{server.url}/readyz"))
            log = server.log_path.read_text(errors="replace")
            failures = log.count("Initializing service error")  # once per worker start, then its traceback
            if "cannot load model files" in log and (failures >= 2 or not server.alive()):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"no worker failed to load within 120 s:\n{server.log_tail()}")
        answers.append(status_of(f"{server.url}/readyz"))
    finally:
        server.stop()
    assert 200 not in answers, answers


def status_of(url: str) -> int | None:
    """Return the status `url` answers with, or None while nothing answers."""
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None
