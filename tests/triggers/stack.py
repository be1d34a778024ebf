"""A real Prometheus and Alertmanager on 127.0.0.1 in front of the receiver, shared by the alert-driven tests.

Prometheus (the local stack's) scrapes an in-test `prometheus_client` exporter and evaluates the test's rules;
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

from serving.embedded.alerting import LocalAlertmanager
from serving.embedded.processes import free_port
from serving.embedded.prometheus_local import LocalPrometheus

NEEDS_BINARIES = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("prometheus-alertmanager") is None,
    reason="needs prometheus and prometheus-alertmanager (.ci/install-system-tools.sh)",
)


def alertmanager(workdir: Path, port: int, receiver_url: str, token: str) -> LocalAlertmanager:
    """Return (not started) the CT loop's Alertmanager, sending every group, resolved ones too, each second."""
    return LocalAlertmanager(workdir, f"{receiver_url}/alerts", token, group_interval="1s", port=port)


def prometheus(
    workdir: Path, exporter_port: int, alertmanager_port: int, rules: dict[str, Any], track: str | None
) -> LocalPrometheus:
    """Return (not started) the local stack's Prometheus scraping the exporter (as `track` when given), alerting."""
    rule_file = workdir / "rules.yml"
    rule_file.write_text(yaml.safe_dump(rules))
    address = f"127.0.0.1:{exporter_port}"
    server = LocalPrometheus(
        workdir / "prometheus",
        None if track else {"model": address},
        rule_files=[rule_file],
        alertmanager=f"127.0.0.1:{alertmanager_port}",
    )
    if track:
        server.set_targets({track: f"http://{address}"})
    return server


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
