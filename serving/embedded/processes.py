"""Child processes of a local rollout (BentoML services, Prometheus), started and stopped cleanly.

Each child runs in its own session so that stopping it also stops the workers it forks, and its output
goes to a log file that a failed start quotes. Readiness is always polled, never assumed after a sleep.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

import httpx
import psutil

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0


class ProcessError(RuntimeError):
    """A child process did not start or become ready; the message quotes its log."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ManagedProcess:
    """One child process with a log file, a readiness URL and a clean stop."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        ready_url: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.ready_url = ready_url
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Start the process (its own session, output to the log file)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        return self

    def log_tail(self, lines: int = 15) -> str:
        """Return the end of the log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> Self:
        """Poll the readiness URL until it answers 200; fail fast if the process exits."""
        if self.ready_url is None:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is None or self.popen.poll() is not None:
                raise ProcessError(f"{self.name} exited before it was ready:\n{self.log_tail()}")
            try:
                if httpx.get(self.ready_url, timeout=2.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        tail = self.log_tail()
        raise ProcessError(f"{self.name} not ready at {self.ready_url} after {timeout:.0f}s:\n{tail}")

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self.popen is not None and self.popen.poll() is None

    def family(self) -> list[psutil.Process]:
        """Return the process and all its descendants (BentoML workers run in sessions of their own)."""
        if self.popen is None:
            return []
        try:
            main = psutil.Process(self.popen.pid)
            return [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """Kill the process and every descendant at once (a crash, for fault drills)."""
        family = self.family()
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(family, timeout=STOP_TIMEOUT_S)
        if self.popen is not None:
            self.popen.wait()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Terminate the process (it stops its workers), then kill whatever of its family is left."""
        family = self.family()
        if not family:
            return
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)
        _, alive = psutil.wait_procs(family, timeout=2.0)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=timeout)
        self.popen.wait()


def bin_path(name: str) -> str:
    """Return an executable next to this Python (the venv's bentoml, mlflow), else the bare name."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name
