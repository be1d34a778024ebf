"""A local Prometheus server for a rollout: scrapes both tracks twice a second, labelled by track.

Targets live in a file_sd JSON file that Prometheus watches, so when promotion moves the stable to a new
process the file is rewritten and no reload is needed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from serving.embedded.processes import ManagedProcess, free_port

SCRAPE_INTERVAL = "500ms"


def prometheus_binary() -> str | None:
    """Return the path of the `prometheus` binary, None when it is not installed."""
    return shutil.which("prometheus")


def scrape_config(
    targets_file: Path,
    extra_targets: Mapping[str, str] | None = None,
    rule_files: Sequence[Path] = (),
    alertmanager: str | None = None,
) -> dict:
    """Return the Prometheus config: model services from the targets file, static extras, rules and alerting."""
    jobs = [
        {
            "job_name": "plinth-model",
            "scrape_interval": SCRAPE_INTERVAL,
            "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}],
        }
    ]
    for job, address in (extra_targets or {}).items():
        jobs.append({"job_name": job, "scrape_interval": SCRAPE_INTERVAL, "static_configs": [{"targets": [address]}]})
    config: dict = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": jobs,
    }
    if rule_files:
        config["rule_files"] = [str(path) for path in rule_files]
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


class LocalPrometheus(ManagedProcess):
    """A Prometheus process with its config and TSDB in `workdir`."""

    def __init__(
        self,
        workdir: Path,
        extra_targets: Mapping[str, str] | None = None,
        port: int | None = None,
        rule_files: Sequence[Path] = (),
        alertmanager: str | None = None,
    ) -> None:
        binary = prometheus_binary()
        if binary is None:
            raise FileNotFoundError("prometheus is not installed (apt-get install -y prometheus)")
        self.port = port or free_port()
        self.targets_file = workdir / "targets.json"
        config = workdir / "prometheus.yml"
        # A fresh TSDB: series left by an earlier run (a stopped canary's up=0) must not answer this one.
        shutil.rmtree(workdir / "tsdb", ignore_errors=True)
        workdir.mkdir(parents=True, exist_ok=True)
        self.set_targets({})
        config.write_text(yaml.safe_dump(scrape_config(self.targets_file, extra_targets, rule_files, alertmanager)))
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]
        super().__init__(
            f"prometheus (:{self.port})", argv, workdir / "prometheus.log", ready_url=f"{self.url}/-/ready"
        )

    @property
    def url(self) -> str:
        """Return the Prometheus base URL."""
        return f"http://127.0.0.1:{self.port}"

    def set_targets(self, tracks: Mapping[str, str]) -> None:
        """Scrape these track -> base URL targets (written atomically; Prometheus picks it up)."""
        groups = [
            {"targets": [url.removeprefix("http://").rstrip("/")], "labels": {"track": track}}
            for track, url in tracks.items()
            if url
        ]
        staging = self.targets_file.with_suffix(".tmp")
        staging.write_text(json.dumps(groups))
        staging.replace(self.targets_file)
