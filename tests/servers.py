"""Real servers for tests, started on 127.0.0.1 with the same process helper the local rollout uses."""

from __future__ import annotations

import sys
from pathlib import Path

from serving.rollout.harness.processes import ManagedProcess, free_port


class MlflowServer:
    """`mlflow server` with a SQLite backend; can be stopped and started again on the same store."""

    def __init__(self, root: Path) -> None:
        self.root = root
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
        server = ManagedProcess("mlflow server", command, self.root / "server.log", ready_url=f"{self.uri}/health")
        self.process = server.start().wait_ready()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        self.process = None
