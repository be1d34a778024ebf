"""A real MLflow registry (SQLite) for the trigger record, a fake training command, and a receiver in a thread."""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from components.common import tracking
from pipelines.triggers.act import Actor
from pipelines.triggers.auth import RateLimit, new_token
from pipelines.triggers.policy import Guardrails
from pipelines.triggers.receive import serve
from pipelines.triggers.record import EXPERIMENT, TriggerRecord
from pipelines.triggers.start import LocalStarter

MODEL = "trigger-model"
RAILS = Guardrails(cool_down=timedelta(hours=1))


def fake_command(tmp_path: Path, exit_code: int = 0, block: Path | None = None) -> list[str]:
    """Return a command that writes its arguments to tmp_path/argv-<pid>, waits for `block` to exist, exits."""
    script = (
        "import json, os, sys, time, pathlib\n"
        f"staged = pathlib.Path({str(tmp_path)!r}, f'.argv-{{os.getpid()}}')\n"
        "staged.write_text(json.dumps(sys.argv[1:]))\n"
        "staged.rename(staged.with_name(staged.name[1:]))\n"  # whole or not at all, for argv_of
        f"block = {str(block) if block else ''!r}\n"
        "while block and not os.path.exists(block):\n"
        "    time.sleep(0.05)\n"
        f"sys.exit({exit_code})\n"
    )
    return [sys.executable, "-c", script]


def argv_of(tmp_path: Path, run: str, timeout: float = 60.0) -> list[str]:
    """Return the arguments a run of `fake_command` was started with, once its process has written them.

    The starter returns as soon as the process is spawned; a loaded machine may take a while to run it.
    """
    path = tmp_path / f"argv-{run.removeprefix('local:')}"
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{run} never wrote {path.name} within {timeout:.0f} s"
        time.sleep(0.05)
    return list(json.loads(path.read_text()))


@pytest.fixture
def record(tmp_path: Path) -> TriggerRecord:
    """The trigger history of MODEL in a fresh SQLite registry."""
    return TriggerRecord(tracking.connect(f"sqlite:///{tmp_path / 'mlflow.db'}"), MODEL)


def alert(feature: str, status: str = "firing", value: str = "0.4") -> dict:
    return {
        "status": status,
        "labels": {"alertname": "PlinthInputDrift", "feature": feature, "track": "stable", "model": "m"},
        "annotations": {"summary": "drift", "value": value},
        "startsAt": "2026-11-23T12:00:00.123Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": f"fp-{feature}",
    }


def body(*alerts: dict, version: str = "4") -> bytes:
    return json.dumps({"version": version, "status": "firing", "receiver": "plinth", "alerts": list(alerts)}).encode()


class Receiver:
    """A receiver served from a thread on 127.0.0.1, starting the fake command."""

    def __init__(
        self,
        record: TriggerRecord,
        starter: LocalStarter,
        limit: RateLimit | None = None,
        socket_timeout: float = 10.0,
    ) -> None:
        self.record, self.starter, self.token = record, starter, new_token()
        actor = Actor(record, starter, RAILS)
        self.server = serve(actor, MODEL, "127.0.0.1", 0, token=self.token, limit=limit, socket_timeout=socket_timeout)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def headers(self) -> dict[str, str]:
        """Return the Authorization header the receiver's Alertmanager sends."""
        return {"Authorization": f"Bearer {self.token}"}

    def logged(self) -> list[dict[str, str]]:
        experiment = self.record.client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            return []
        runs = self.record.client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
        return [run.data.tags for run in runs]

    def runs(self) -> int:
        """Return how many runs the registry holds in any experiment (a refused request must add none)."""
        experiments = [e.experiment_id for e in self.record.client.search_experiments()]
        return len(self.record.client.search_runs(experiments)) if experiments else 0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for child in self.starter.children.values():
            child.wait(30)
