"""The receiver over HTTP: what a bad notification gets, what a resolved one records, what it exports."""

from __future__ import annotations

import http.client
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pipelines.triggers.receive import DECISIONS, REJECTED
from pipelines.triggers.receive import main as receive_main
from pipelines.triggers.record import TriggerRecord
from pipelines.triggers.start import LocalStarter
from serving.embedded.processes import ManagedProcess, free_port
from tests.triggers.conftest import MODEL, Receiver, alert, body, fake_command


@pytest.fixture
def receiver(record: TriggerRecord, tmp_path: Path) -> Iterator[Receiver]:
    running = Receiver(record, LocalStarter(tmp_path / "logs", fake_command(tmp_path)))
    yield running
    running.close()


def model_alert(feature: str, status: str = "firing") -> dict:
    raw = alert(feature, status)
    raw["labels"]["model"] = MODEL
    return raw


def test_a_bad_notification_gets_a_400_naming_the_field(receiver: Receiver):
    rejected = REJECTED._value.get()
    answer = httpx.post(
        f"{receiver.url}/alerts", headers=receiver.headers, content=body({**model_alert("x"), "startsAt": 5})
    )
    assert answer.status_code == 400
    assert answer.json() == {"error": "alerts[0].startsAt: expected str, got int"}
    assert httpx.post(f"{receiver.url}/webhook", headers=receiver.headers, content=body()).status_code == 404
    connection = http.client.HTTPConnection("127.0.0.1", receiver.server.server_address[1], timeout=10)
    connection.putrequest("POST", "/alerts")
    connection.putheader("Authorization", receiver.headers["Authorization"])
    connection.putheader("Content-Length", str(2 << 20))
    connection.endheaders()
    too_big = connection.getresponse()
    assert too_big.status == 413
    assert json.loads(too_big.read()) == {"error": f"Content-Length: '{2 << 20}', at most {1 << 20}"}
    connection.close()
    assert REJECTED._value.get() == rejected + 2
    assert f"plinth_trigger_rejected_payloads_total {rejected + 2}" in httpx.get(f"{receiver.url}/metrics").text
    assert receiver.logged() == []


def test_resolved_and_foreign_alerts_are_ignored(receiver: Receiver):
    before = DECISIONS.labels("input_drift", "ignore")._value.get()
    other = alert("y")  # model "m": another receiver's model
    foreign = {**model_alert("z"), "labels": {"alertname": "PlinthHighErrorRate", "model": MODEL}}
    answer = httpx.post(
        f"{receiver.url}/alerts", headers=receiver.headers, content=body(model_alert("x", "resolved"), other, foreign)
    )
    assert answer.status_code == 200
    [outcome] = answer.json()["outcomes"]
    assert outcome["decision"] == "ignore"
    assert outcome["reason"].startswith("resolved: PlinthInputDrift resolved for feature(s) x")
    assert DECISIONS.labels("input_drift", "ignore")._value.get() == before + 2
    [logged] = receiver.logged()
    assert logged["plinth.trigger.decision"] == "ignore"
    assert receiver.starter.children == {}


def test_a_firing_drift_alert_starts_one_run(receiver: Receiver):
    answer = httpx.post(
        f"{receiver.url}/alerts", headers=receiver.headers, content=body(model_alert("x"), model_alert("y"))
    )
    [outcome] = answer.json()["outcomes"]
    assert outcome["decision"] == "start"
    assert outcome["run"] in receiver.starter.children
    again = httpx.post(f"{receiver.url}/alerts", headers=receiver.headers, content=body(model_alert("x"))).json()[
        "outcomes"
    ]
    assert again[0]["decision"] in ("coalesce", "cool_down")
    metrics = httpx.get(f"{receiver.url}/metrics").text
    assert 'plinth_trigger_decisions_total{decision="start",kind="input_drift"}' in metrics
    [started] = [tags for tags in receiver.logged() if tags["plinth.trigger.decision"] == "start"]
    assert json.loads(started["plinth.trigger.values"]) == {"psi.x": 0.4, "psi.y": 0.4}
    assert started["plinth.trigger.started_run"] == outcome["run"]


@pytest.mark.integration
def test_the_command_line_serves_on_plinth_home(tmp_path: Path):
    port = free_port()
    argv = [sys.executable, "-m", "pipelines.triggers.receive", "--port", str(port), "--model-name", MODEL]
    env = {"PLINTH_HOME": str(tmp_path / "home")}
    server = ManagedProcess(
        "receiver", argv, tmp_path / "receiver.log", env=env, ready_url=f"http://127.0.0.1:{port}/healthz"
    )
    try:
        server.start().wait_ready(60)
        token = (tmp_path / "home" / "trigger-token").read_text()  # generated: a local receiver has one too
        assert (tmp_path / "home" / "trigger-token").stat().st_mode & 0o077 == 0
        resolved = body(model_alert("x", "resolved"))
        assert httpx.post(f"http://127.0.0.1:{port}/alerts", content=resolved).status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        answer = httpx.post(f"http://127.0.0.1:{port}/alerts", headers=auth, content=resolved)
        assert answer.json()["outcomes"][0]["decision"] == "ignore"
    finally:
        server.stop()
    assert (tmp_path / "home" / "mlflow.db").is_file()


def test_the_command_line_refuses_bad_guard_rails(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    rails = tmp_path / "rails.yaml"
    rails.write_text("coolDown: later\n")
    assert receive_main(["--rails", str(rails)]) == 2
    assert capsys.readouterr().err == "error: duration 'later': expected seconds or a number with s/m/h/d, e.g. 6h\n"
