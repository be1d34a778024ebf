"""Integration tier: a real `bentoml serve` process on 127.0.0.1 against a real registered model."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from mlflow import MlflowClient

from serving.bench.demo_model import RegisteredModel
from serving.model_service import registry, settings

from .conftest import Server, env_for, free_port, running_server, serve_command, server_env

pytestmark = pytest.mark.integration


def scrape(server: Server) -> dict[str, float]:
    """Return every sample of /metrics as {'name{labels}': value}."""
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


def total(samples: dict[str, float], pattern: str) -> float:
    return sum(value for key, value in samples.items() if re.fullmatch(pattern, key))


def predict(server: Server, instances: list[dict[str, float]]) -> httpx.Response:
    return httpx.post(f"{server.url}/predict", json={"instances": instances}, timeout=30)


def test_predictions_equal_in_process_model(server: Server, registered: RegisteredModel) -> None:
    frame = registered.features.iloc[100:160]
    response = predict(server, frame.to_dict(orient="records"))
    assert response.status_code == 200, response.text
    got = np.array([p["probability"] for p in response.json()["predictions"]])
    np.testing.assert_allclose(got, registered.model.predict_proba(frame)[:, 1], rtol=1e-9, atol=1e-12)


def test_concurrent_single_rows_are_batched_and_correct(server: Server, registered: RegisteredModel) -> None:
    frame = registered.features.iloc[:64]
    expected = registered.model.predict_proba(frame)[:, 1]
    results: dict[int, float] = {}

    def one(index: int) -> None:
        body = predict(server, [frame.iloc[index].to_dict()]).json()
        results[index] = body["predictions"][0]["probability"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(frame))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    np.testing.assert_allclose([results[i] for i in range(len(frame))], expected, rtol=1e-9)


def test_metrics_move_with_requests(server: Server, registered: RegisteredModel) -> None:
    before = scrape(server)
    assert (
        total(before, rf'plinth_model_info\{{model_name="{registered.name}",model_version="{registered.version}"\}}')
        == 1
    )
    rows = registered.features.iloc[:20].to_dict(orient="records")
    for start in range(0, 20, 5):
        assert predict(server, rows[start : start + 5]).status_code == 200
    assert predict(server, []).status_code == 400
    after = scrape(server)
    ok_requests = r'bentoml_service_request_total\{.*endpoint="/predict".*http_response_code="200".*\}'
    assert total(after, ok_requests) - total(before, ok_requests) == 4
    assert (
        total(after, "plinth_prediction_probability_count") - total(before, "plinth_prediction_probability_count") == 20
    )
    assert total(after, r'plinth_prediction_probability_bucket\{le="1.0"\}') >= 20
    classes = r"plinth_predicted_class_total\{.*\}"
    assert total(after, classes) - total(before, classes) == 20
    batch = r'plinth_rejected_requests_total\{reason="batch_size"\}'
    assert total(after, batch) - total(before, batch) == 1
    assert total(after, r"bentoml_service_request_duration_seconds_bucket\{.*le=\"0.005\".*\}") >= 0


def test_drift_gauge_rises_with_shifted_inputs(server: Server, registered: RegisteredModel) -> None:
    features = registered.features
    normal = features.sample(500, replace=True, random_state=1)
    assert predict(server, normal.to_dict(orient="records")).status_code == 200
    calm = total(scrape(server), r'plinth_input_drift_psi\{feature="mean_radius"\}')
    shifted = normal + features.std() * 3
    assert predict(server, shifted.to_dict(orient="records")).status_code == 200
    after = scrape(server)
    assert calm < 0.1
    assert total(after, r'plinth_input_drift_psi\{feature="mean_radius"\}') > 1.0
    assert total(after, r'plinth_out_of_range_total\{feature="mean_radius"\}') > 0


def test_unknown_model_exits_with_one_clear_line(registered: RegisteredModel, tmp_path: Path) -> None:
    env = server_env(tmp_path, env_for(registered, **{settings.ENV_MODEL_NAME: "no-such-model"}))
    result = subprocess.run(
        serve_command(free_port()), env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("plinth model service:")]
    assert len(lines) == 1
    assert "models:/no-such-model@champion" in lines[0]


def test_schemathesis_finds_no_server_error(server: Server) -> None:
    """Property-based requests generated from the service's own OpenAPI spec never get a 5xx."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "run", f"{server.url}/docs.json",
         "--checks", "not_a_server_error", "--max-examples", "60", "--seed", "7",
         "--generation-database", "none"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    assert "passed" in result.stdout
    assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200


def test_overload_is_429_and_timeout_is_504(registered: RegisteredModel, tmp_path: Path) -> None:
    env = env_for(
        registered,
        **{
            settings.ENV_CHAOS_LATENCY_MS: "3000",
            settings.ENV_TIMEOUT_S: "1",
            settings.ENV_MAX_CONCURRENCY: "1",
        },
    )
    row = registered.features.iloc[:1].to_dict(orient="records")
    with running_server(env, tmp_path) as slow:
        statuses: list[int] = []
        first = threading.Thread(target=lambda: statuses.append(predict(slow, row).status_code))
        first.start()
        deadline = 50
        while deadline and not total(scrape(slow), r"bentoml_service_request_in_progress\{.*/predict.*\}"):
            deadline -= 1
            threading.Event().wait(0.05)
        second = predict(slow, row)
        first.join()
        assert second.status_code == 429
        assert statuses == [504]
        assert httpx.get(f"{slow.url}/readyz", timeout=5).status_code == 200


def test_make_serve_entry_point_prints_urls_and_serves(registered: RegisteredModel, tmp_path: Path) -> None:
    """What `make serve` runs: the URLs come first, then the champion answers on 127.0.0.1:$PORT."""
    port = free_port()
    env = server_env(tmp_path, {**env_for(registered), settings.ENV_PORT: str(port), "PLINTH_HOME": str(tmp_path)})
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "serving.model_service.serve"], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        body = httpx.post(
            f"http://127.0.0.1:{port}/predict", json={"instances": [registered.features.iloc[0].to_dict()]}
        )
        assert body.status_code == 200
        output = (tmp_path / "serve.log").read_text()
        for url in (f"http://127.0.0.1:{port}/predict", f"http://127.0.0.1:{port}/docs.json", f"{port}/metrics"):
            assert url in output
        assert (tmp_path / "bentoml").is_dir()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        log.close()


def test_unloadable_model_never_becomes_ready(registered: RegisteredModel, tmp_path: Path) -> None:
    """A version whose files cannot be unpickled: workers fail at start, /readyz never answers 200.

    (BentoML's arbiter restarts failed workers, so the process stays up unready; exiting is fine too.)
    """
    source = MlflowClient(tracking_uri=registered.tracking_uri, registry_uri=registered.tracking_uri).get_model_version(
        registered.name, registered.version
    )
    broken = MlflowClient(
        tracking_uri=registered.tracking_uri, registry_uri=registered.tracking_uri
    ).create_model_version(registered.name, str(source.source), run_id=source.run_id)
    env = env_for(registered, **{settings.ENV_MODEL_VERSION: str(broken.version)})
    local_dir = registry.fetch(settings.Settings.from_env(env)).local_dir
    (local_dir / "model.pkl").write_bytes(b"not a pickle")
    server = Server(env, tmp_path, free_port())
    try:
        with pytest.raises((TimeoutError, RuntimeError)):
            server.wait_ready(timeout=15)
        assert "cannot load model files" in server.log_path.read_text()
    finally:
        server.stop()
