"""A real Prometheus and Alertmanager on 127.0.0.1 in front of the receiver, shared by the alert-driven tests.

Prometheus scrapes an in-test `prometheus_client` exporter and evaluates the test's rules every 250 ms;
Alertmanager groups per alert name and feature (1 s) and posts each group to the receiver's `/alerts`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server

from serving.rollout.harness.alerting import LocalAlertmanager
from serving.rollout.harness.processes import ManagedProcess, free_port

NEEDS_BINARIES = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("prometheus-alertmanager") is None,
    reason="needs prometheus and prometheus-alertmanager (.ci/install-system-tools.sh)",
)


def alertmanager(workdir: Path, port: int, receiver_url: str) -> LocalAlertmanager:
    """Return (not started) the CT loop's Alertmanager, sending every group, resolved ones too, each second."""
    return LocalAlertmanager(workdir, f"{receiver_url}/alerts", group_interval="1s", port=port)


def prometheus(
    workdir: Path, exporter_port: int, alertmanager_port: int, rules: dict[str, Any], labels: dict[str, str]
) -> ManagedProcess:
    """Return (not started) a Prometheus scraping the exporter (with `labels`) and alerting on `rules`."""
    port = free_port()
    (workdir / "rules.yml").write_text(yaml.safe_dump(rules))
    config = {
        "global": {"scrape_interval": "250ms", "evaluation_interval": "250ms"},
        "rule_files": [str(workdir / "rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
        "scrape_configs": [
            {"job_name": "model", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"], "labels": labels}]}
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    argv = [
        "prometheus",
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    return ManagedProcess("prometheus", argv, workdir / "prometheus.log", ready_url=f"http://127.0.0.1:{port}/-/ready")


@contextmanager
def exporter(registry: CollectorRegistry) -> Iterator[int]:
    """Serve `registry` on a free port of 127.0.0.1 for Prometheus to scrape; yield the port."""
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield port
    finally:
        server.shutdown()
        thread.join(5)
