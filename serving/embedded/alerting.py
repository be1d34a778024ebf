"""Local alerting for the CT loop: the chart's drift alert as a rule file, and a real Alertmanager.

The rule is the chart's `PlinthInputDrift` (helm/plinth-serving/templates/prometheusrule.yaml) with the
same expression, labels and `value` annotation; only its `for` is shorter by default, so a drift on one
machine alerts in seconds rather than the cluster's minutes. Alertmanager is the Debian package
`prometheus-alertmanager`, configured like the cluster's route: one notification group per feature, posted
to the trigger receiver with `send_resolved` and the receiver's bearer token, which Alertmanager reads from an
owner-only file beside its config (`http_config.authorization.credentials_file`), never from the config itself.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from serving.embedded.processes import ManagedProcess, free_port

DRIFT_ALERT = "PlinthInputDrift"


@dataclass(frozen=True)
class DriftRule:
    """The drift alert's threshold (PSI of any feature) and how long it must hold."""

    max_psi: float = 0.25
    hold: str = "10s"

    def groups(self, model_name: str) -> dict:
        """Return the Prometheus rule file's content."""
        rule = {
            "alert": DRIFT_ALERT,
            "expr": f"max by (feature, track) (plinth_input_drift_psi) > {self.max_psi}",
            "for": self.hold,
            "labels": {"severity": "warning", "model": model_name},
            "annotations": {
                "summary": f"Input drift (PSI) of feature {{{{ $labels.feature }}}} above {self.max_psi:g} "
                "on track {{ $labels.track }}",
                "value": "{{ $value }}",
            },
        }
        return {"groups": [{"name": "plinth-ct", "interval": "1s", "rules": [rule]}]}

    def write(self, path: Path, model_name: str) -> Path:
        """Write the rule file for Prometheus' `rule_files`; return its path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.groups(model_name), sort_keys=False))
        return path


def alertmanager_binary() -> str | None:
    """Return the path of Debian's `prometheus-alertmanager` (or a plain `alertmanager`), None when absent."""
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


class LocalAlertmanager(ManagedProcess):
    """One Alertmanager (no cluster gossip) routing every alert to a webhook, grouped per alert and feature."""

    def __init__(
        self,
        workdir: Path,
        webhook_url: str,
        token: str,
        group_wait: str = "1s",
        group_interval: str = "5s",
        port: int | None = None,
    ) -> None:
        binary = alertmanager_binary()
        if binary is None:
            raise FileNotFoundError("alertmanager is not installed (apt-get install -y prometheus-alertmanager)")
        self.port = port or free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        token_file = workdir / "receiver-token"
        token_file.unlink(missing_ok=True)
        descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(token)
        webhook = {
            "url": webhook_url,
            "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}},
        }
        config = {
            "route": {
                "receiver": "plinth-triggers",
                "group_by": ["alertname", "feature"],
                "group_wait": group_wait,
                "group_interval": group_interval,
                "repeat_interval": "1h",
            },
            "receivers": [{"name": "plinth-triggers", "webhook_configs": [webhook]}],
        }
        (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
        # A fresh notification log: silences and sent notifications of an earlier run must not apply here.
        shutil.rmtree(workdir / "data", ignore_errors=True)
        argv = [
            binary,
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]
        super().__init__(
            f"alertmanager (:{self.port})", argv, workdir / "alertmanager.log", ready_url=f"{self.url}/-/ready"
        )

    @property
    def url(self) -> str:
        """Return the Alertmanager base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """Return host:port, as Prometheus' alerting config wants it."""
        return f"127.0.0.1:{self.port}"
