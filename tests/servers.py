"""Real servers for tests, started on 127.0.0.1 with the same process helper the local rollout uses."""

from __future__ import annotations

import configparser
import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

import psutil

from serving.embedded.processes import STOP_TIMEOUT_S, ManagedProcess, free_port

# MLflow's job execution (GenAI jobs: a job runner and seven huey consumers, each a Python importing mlflow)
# serves no test of a registry; off, a server start costs one process instead of nine. `env` can turn it on.
NO_JOBS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
# basic-auth checks every request's password with werkzeug's scrypt (tens of ms quiet, over 0.5 s on a loaded
# 2-core machine), and a test client sends hundreds of requests. MLflow's own credential cache (off by default,
# off in the platform's ini) skips the check for a login it accepted within the TTL; grants are still read per
# request, and a refused login is never cached, so every permission check stays as the platform has it.
AUTH_CACHE_TTL_S = "600"


def cache_logins(ini: Path) -> None:
    """Turn on basic-auth's credential cache in the ini file at `ini` (a test server's copy), keeping its mode."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(ini)
    config["mlflow"]["auth_cache_ttl_seconds"] = AUTH_CACHE_TTL_S
    with ini.open("w") as out:
        config.write(out)


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
            stop_mlflow(self.process)
        self.process = None


def stop_mlflow(process: ManagedProcess) -> None:
    """Stop `mlflow server`: its server process gracefully (SIGTERM, as ManagedProcess.stop), then the CLI.

    The CLI only waits for the uvicorn process it started; once that has finished, what is left of the CLI is an
    interpreter unloading every MLflow module, seconds of CPU on a loaded machine with nothing left to write. So
    it is killed once it is alone, instead of being waited for.
    """
    family = process.family()
    if not family or process.popen is None:
        return
    cli, servers = family[0], family[1:]
    os.killpg(process.popen.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(servers, timeout=STOP_TIMEOUT_S)
    if alive or not servers:  # no server child seen: let ManagedProcess's own stop wait for the CLI
        process.stop()
        return
    with contextlib.suppress(psutil.NoSuchProcess):
        cli.kill()
    process.popen.wait()
