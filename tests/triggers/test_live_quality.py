"""Live quality under its threshold, through a real Prometheus and Alertmanager, starts one performance_decay run.

The exporter stands in for the live-quality exporter (`serving/model_service/live_quality.py`;
`plinth_live_correct`: 1 per labelled row answered right, 0 per row answered wrong) served by prometheus_client
in the test. The rule is the shape of the
chart's `PlinthLiveQualityLow` (labels `model`, `severity`, `metric`, annotation `value`); it compares the running
accuracy rather than a rate over a window, so the test need not keep feedback flowing while Prometheus scrapes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Summary

from pipelines.triggers.record import TriggerRecord
from pipelines.triggers.start import LocalStarter
from serving.embedded.processes import free_port
from serving.rollout.tests.http_backend import wait_until
from tests.triggers.conftest import MODEL, Receiver, argv_of, fake_command
from tests.triggers.stack import NEEDS_BINARIES, alertmanager, exporter, prometheus

pytestmark = [pytest.mark.integration, NEEDS_BINARIES]
MIN_ACCURACY = 0.8
RULE = {
    "groups": [
        {
            "name": "plinth-live-quality",
            "interval": "250ms",
            "rules": [
                {
                    "alert": "PlinthLiveQualityLow",
                    "expr": "sum by (model_version) (plinth_live_correct_sum) / sum by (model_version) "
                    f"(plinth_live_correct_count) < {MIN_ACCURACY}",
                    "for": "0s",
                    "labels": {"severity": "warning", "model": MODEL, "metric": "accuracy"},
                    "annotations": {
                        "summary": "live accuracy of v{{ $labels.model_version }}",
                        "value": "{{ $value }}",
                    },
                }
            ],
        }
    ]
}


def test_low_live_accuracy_starts_one_performance_decay_run_with_its_value(record: TriggerRecord, tmp_path: Path):
    registry = CollectorRegistry()
    labels = ["model_name", "model_version"]
    correct = Summary("plinth_live_correct", "1 per labelled row answered right.", labels, registry=registry)
    release = tmp_path / "release"
    receiver = Receiver(record, LocalStarter(tmp_path / "logs", fake_command(tmp_path, block=release)))
    processes = []
    try:
        with exporter(registry) as port:
            am_port = free_port()
            processes.append(alertmanager(tmp_path, am_port, receiver.url, receiver.token).start().wait_ready(30))
            processes.append(prometheus(tmp_path, port, am_port, RULE, None).start().wait_ready(30))
            for right in [1] * 6 + [0] * 4:  # ground truth came back: 6 of 10 answers right
                correct.labels(MODEL, "3").observe(right)

            assert wait_until(lambda: len(receiver.logged()) >= 1, timeout=25), (
                tmp_path / "prometheus.log"
            ).read_text()
            [tags] = receiver.logged()
            assert tags["plinth.trigger.kind"] == "performance_decay"
            assert tags["plinth.trigger.decision"] == "start"
            assert json.loads(tags["plinth.trigger.values"]) == {"accuracy": pytest.approx(0.6)}
            assert tags["plinth.trigger.reason"] == "PlinthLiveQualityLow firing for version(s) 3 (accuracy 0.6)"
            [run] = receiver.starter.children
            argv = argv_of(tmp_path, run)
            assert json.loads(argv[argv.index("--trigger") + 1])["kind"] == "performance_decay"
    finally:
        release.touch()
        for process in reversed(processes):
            process.stop()
        receiver.close()
