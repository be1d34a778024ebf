"""A burst of drift alerts through a real Prometheus and a real Alertmanager starts exactly one run.

The gauge is a real prometheus_client HTTP server in the test; Prometheus evaluates the chart's drift rule
(`for: 0s`, every 250 ms) and sends to Alertmanager, which groups per feature (1 s) and posts each group to
the receiver, so three features crossing the threshold at once make three notifications.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge

from pipelines.triggers.receive import DECISIONS
from pipelines.triggers.record import TriggerRecord
from pipelines.triggers.start import LocalStarter
from serving.embedded.processes import free_port
from serving.rollout.tests.http_backend import wait_until
from tests.triggers.conftest import MODEL, Receiver, fake_command
from tests.triggers.stack import NEEDS_BINARIES, alertmanager, exporter, prometheus

pytestmark = [pytest.mark.integration, NEEDS_BINARIES]
FEATURES = {"radius": 0.41, "area": 0.52, "texture": 0.33}
RULE = {
    "groups": [
        {
            "name": "plinth-drift",
            "interval": "250ms",
            "rules": [
                {
                    "alert": "PlinthInputDrift",
                    "expr": "max by (feature, track) (plinth_input_drift_psi) > 0.25",
                    "for": "0s",
                    "labels": {"severity": "warning", "model": MODEL},
                    "annotations": {"summary": "drift of {{ $labels.feature }}", "value": "{{ $value }}"},
                }
            ],
        }
    ]
}


@pytest.fixture
def drift_gauge() -> Iterator[tuple[Gauge, int]]:
    registry = CollectorRegistry()
    gauge = Gauge("plinth_input_drift_psi", "PSI per feature.", ["feature"], registry=registry)
    with exporter(registry) as port:
        yield gauge, port


def test_a_burst_of_drift_alerts_starts_exactly_one_run(
    record: TriggerRecord, tmp_path: Path, drift_gauge: tuple[Gauge, int]
):
    gauge, gauge_port = drift_gauge
    for feature in FEATURES:
        gauge.labels(feature).set(0.01)
    release = tmp_path / "release"
    receiver = Receiver(record, LocalStarter(tmp_path / "logs", fake_command(tmp_path, block=release)))
    processes = []
    try:
        am_port = free_port()
        processes.append(alertmanager(tmp_path, am_port, receiver.url, receiver.token).start().wait_ready(30))
        processes.append(prometheus(tmp_path, gauge_port, am_port, RULE, "stable").start().wait_ready(30))
        ignored_before = DECISIONS.labels("input_drift", "ignore")._value.get()

        for feature, psi in FEATURES.items():  # the burst: three features drift at once
            gauge.labels(feature).set(psi)
        assert wait_until(lambda: len(receiver.logged()) >= len(FEATURES), timeout=25), receiver.logged()
        tags = receiver.logged()
        started = [t for t in tags if t["plinth.trigger.decision"] == "start"]
        assert len(started) == 1
        assert len(receiver.starter.children) == 1
        [feature] = json.loads(started[0]["plinth.trigger.values"])  # one feature's group started it
        assert json.loads(started[0]["plinth.trigger.values"])[feature] == pytest.approx(
            FEATURES[feature.removeprefix("psi.")]
        )
        assert started[0]["plinth.trigger.kind"] == "input_drift"
        coalesced = [t for t in tags if t["plinth.trigger.decision"] == "coalesce"]
        assert len(coalesced) == len(FEATURES) - 1
        assert all(started[0]["plinth.trigger.started_run"] in t["plinth.trigger.decision_reason"] for t in coalesced)

        for feature in FEATURES:  # drift goes away: the resolved notifications are recorded and ignored
            gauge.labels(feature).set(0.01)
        assert wait_until(
            lambda: DECISIONS.labels("input_drift", "ignore")._value.get() >= ignored_before + len(FEATURES), timeout=25
        )
        ignored = [t for t in receiver.logged() if t["plinth.trigger.decision"] == "ignore"]
        assert all(t["plinth.trigger.decision_reason"].startswith("resolved: ") for t in ignored)
        assert len(receiver.starter.children) == 1
    finally:
        release.touch()
        for process in reversed(processes):
            process.stop()
        receiver.close()
