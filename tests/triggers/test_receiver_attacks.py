"""The receiver under attack: no token, another model's alert, a stalled client, a flood, a URI with a password.

Each refusal is checked where it matters: no training run started and nothing written to (or read from)
MLflow, which a counting proxy in front of the real SQLite registry's client shows.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from argparse import Namespace
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines.triggers.auth import ENV_TOKEN, ENV_TOKEN_FILE, RateLimit
from pipelines.triggers.receive import NO_MODEL_LABEL, OTHER_MODEL, RATE_LIMITED, REFUSED, UNAUTHORIZED
from pipelines.triggers.receive import main as receive_main
from pipelines.triggers.record import TriggerRecord
from pipelines.triggers.start import ClusterStarter, LocalStarter
from pipelines.triggers.wiring import build
from serving.embedded.processes import ManagedProcess, free_port
from tests.triggers.conftest import MODEL, Receiver, alert, body, fake_command
from tests.triggers.test_kfp_client import TRIGGER, FakeClient

PASSWORD = "s3cr3t-of-this-test"


class CountingClient:
    """The real MlflowClient, counting every call made through it."""

    def __init__(self, client: Any) -> None:
        self.client, self.calls = client, 0

    def __getattr__(self, name: str) -> Any:
        self.calls += 1
        return getattr(self.client, name)


def model_alert(feature: str, status: str = "firing") -> dict:
    raw = alert(feature, status)
    raw["labels"]["model"] = MODEL
    return raw


def refused(reason: str) -> float:
    return REFUSED.labels(reason)._value.get()


@pytest.fixture
def counted(record: TriggerRecord) -> CountingClient:
    counting = CountingClient(record.client)
    record.client = counting  # type: ignore[assignment]
    return counting


@pytest.fixture
def receiver(record: TriggerRecord, counted: CountingClient, tmp_path: Path) -> Iterator[Receiver]:
    running = Receiver(record, LocalStarter(tmp_path / "logs", fake_command(tmp_path)), socket_timeout=1.0)
    yield running
    running.close()


def test_an_alert_without_the_token_gets_401_and_reaches_no_registry(receiver: Receiver, counted: CountingClient):
    before = refused(UNAUTHORIZED)
    url, firing = f"{receiver.url}/alerts", body(model_alert("x"))
    for headers in (
        {},
        {"Authorization": "Bearer not-the-token-of-this-receiver"},
        {"Authorization": receiver.token},  # the token without its scheme
        {"Authorization": f"Basic {receiver.token}"},
    ):
        answer = httpx.post(url, content=firing, headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert refused(UNAUTHORIZED) == before + 4
    assert counted.calls == 0
    assert receiver.starter.children == {}
    assert (
        f'plinth_trigger_refused_total{{reason="{UNAUTHORIZED}"}} {before + 4}'
        in httpx.get(f"{receiver.url}/metrics").text
    )
    assert httpx.post(url, content=firing, headers=receiver.headers).json()["outcomes"][0]["decision"] == "start"


def test_an_alert_without_this_model_in_its_model_label_starts_nothing(receiver: Receiver, counted: CountingClient):
    unlabelled = model_alert("x")
    del unlabelled["labels"]["model"]
    other = alert("y")  # model "m"
    no_label, other_model = refused(NO_MODEL_LABEL), refused(OTHER_MODEL)
    answer = httpx.post(f"{receiver.url}/alerts", content=body(unlabelled, other), headers=receiver.headers)
    assert answer.status_code == 200
    assert answer.json() == {"outcomes": []}
    assert (refused(NO_MODEL_LABEL), refused(OTHER_MODEL)) == (no_label + 1, other_model + 1)
    assert counted.calls == 0
    assert receiver.starter.children == {}


def test_a_stalled_client_is_dropped_within_the_timeout_while_others_are_served(receiver: Receiver):
    port = receiver.server.server_address[1]
    stalled = []
    for partial in (
        b"POST /alerts HTTP/1.1\r\nHost: x\r\n",  # headers never finished
        f"POST /alerts HTTP/1.1\r\nAuthorization: Bearer {receiver.token}\r\nContent-Length: 500\r\n\r\n{{".encode(),
    ):
        client = socket.create_connection(("127.0.0.1", port), timeout=8)
        client.sendall(partial)
        stalled.append(client)
    began = time.monotonic()
    assert httpx.get(f"{receiver.url}/healthz", timeout=2).text == "ok\n"  # served meanwhile
    for client in stalled:
        assert client.recv(1024) == b""  # closed by the receiver, not by our 8 s timeout
        client.close()
    assert time.monotonic() - began < 4
    assert receiver.logged() == []


def test_a_burst_over_the_rate_limit_gets_429_and_no_more_runs(record: TriggerRecord, tmp_path: Path):
    receiver = Receiver(
        record, LocalStarter(tmp_path / "logs", fake_command(tmp_path)), limit=RateLimit(per_second=0.001, burst=2)
    )
    try:
        before = refused(RATE_LIMITED)
        answers = [
            httpx.post(f"{receiver.url}/alerts", content=body(model_alert("x")), headers=receiver.headers)
            for _ in range(6)
        ]
        assert [a.status_code for a in answers] == [200, 200, 429, 429, 429, 429]
        assert int(answers[2].headers["Retry-After"]) >= 1
        assert refused(RATE_LIMITED) == before + 4
        assert len(receiver.logged()) == 2  # one start, one coalesce: the 429s wrote nothing
        assert len(receiver.starter.children) == 1
    finally:
        receiver.close()


def test_the_runs_it_starts_carry_no_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake = FakeClient()
    monkeypatch.setattr("pipelines.triggers.wiring.client_for", lambda host: fake)
    args = Namespace(
        rails=None,
        kfp_host="http://ml-pipeline.kubeflow:8888",
        tracking_uri=f"http://trigger-user:{PASSWORD}@127.0.0.1:1",
        model_name=MODEL,
        pipeline=tmp_path / "pipeline.yaml",
        experiment="plinth-training",
        log_dir=None,
    )
    starter = build(args).actor.starter
    assert isinstance(starter, ClusterStarter)
    assert starter.start(TRIGGER, "start") == "kfp:run-1"
    assert fake.last_run["arguments"]["tracking_uri"] == "http://127.0.0.1:1"
    assert PASSWORD not in json.dumps(fake.last_run, default=str)
    assert "trigger-user" not in json.dumps(fake.last_run, default=str)


def test_a_cluster_receiver_without_a_token_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.delenv(ENV_TOKEN, raising=False)
    monkeypatch.delenv(ENV_TOKEN_FILE, raising=False)
    assert receive_main(["--kfp-host", "http://ml-pipeline.kubeflow:8888"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: --token-file is required with --kfp-host")
    monkeypatch.setenv(ENV_TOKEN, "short")
    assert receive_main(["--kfp-host", "http://ml-pipeline.kubeflow:8888"]) == 2
    assert capsys.readouterr().err == f"error: ${ENV_TOKEN}: the token must be at least 16 characters\n"


class KfpHealthz(BaseHTTPRequestHandler):
    """The one KFP API call `kfp.Client()` makes when it is created: single-user, healthy."""

    def do_GET(self) -> None:
        data = b'{"multi_user": false}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def kfp_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), KfpHealthz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.integration
def test_the_receiver_logs_no_password_of_its_tracking_uri(tmp_path: Path, kfp_api: str):
    """A cluster receiver whose registry URI carries a password, and a registry that is down: logs and answers."""
    port, token_file = free_port(), tmp_path / "token"
    token_file.write_text("a-token-of-this-test-0123456789\n")
    registry = f"http://trigger-user:{PASSWORD}@127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "pipelines.triggers.receive", "--port", str(port), "--token-file", str(token_file)]
    argv += ["--tracking-uri", registry, "--kfp-host", kfp_api, "--model-name", MODEL]
    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "PLINTH_HOME": str(tmp_path)}
    log = tmp_path / "receiver.log"
    server = ManagedProcess("receiver", argv, log, env=env, ready_url=f"http://127.0.0.1:{port}/healthz")
    try:
        server.start().wait_ready(60)
        headers = {"Authorization": "Bearer a-token-of-this-test-0123456789"}
        answer = httpx.post(f"http://127.0.0.1:{port}/alerts", content=body(model_alert("x")), headers=headers)
        assert answer.status_code == 503
        assert PASSWORD not in answer.text
    finally:
        server.stop()
    logged = log.read_text()
    assert f"(registry http://***@127.0.0.1:{registry.rsplit(':', 1)[1]}" in logged
    assert "registry unavailable (503, Alertmanager retries)" in logged
    assert PASSWORD not in logged
