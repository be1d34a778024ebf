"""Real servers for tests, started on 127.0.0.1 with the same process helper the local rollout uses."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from serving.embedded.processes import ManagedProcess, free_port

# MLflow's job execution (GenAI jobs: a job runner and seven huey consumers, each a Python importing mlflow)
# serves no test of a registry; off, a server start costs one process instead of nine. `env` can turn it on.
NO_JOBS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


class MlflowServer:
    """`mlflow server` with a SQLite backend; can be stopped and started again on the same store.

    `app_name="basic-auth"` (with `MLFLOW_AUTH_CONFIG_PATH` in `env`) runs it behind MLflow's basic-auth.
    """

    def __init__(self, root: Path, app_name: str | None = None, env: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.app_name = app_name
        self.env = {**NO_JOBS, **(env or {})}
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: ManagedProcess | None = None

    def start(self) -> None:
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination", str(self.root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        if self.app_name:
            command += ["--app-name", self.app_name]
        log = self.root / "server.log"
        server = ManagedProcess("mlflow server", command, log, env=self.env, ready_url=f"{self.uri}/health")
        self.process = server.start().wait_ready()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        self.process = None
