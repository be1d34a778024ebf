"""Warm steps for kfp.local: every pipeline step forks from a process that has already imported the stack.

kfp.local runs each step as `sh -ec '... python3 -m kfp.dsl.executor_main ...'` in a fresh interpreter, which
spends 2-5 s importing MLflow, pandas, scikit-learn, XGBoost and PyTorch before it does any work (the
per-step table in pipelines/bench-results.md). `warm_steps()` starts one server that imports them once, and
points kfp.local's `python3` at a stand-in (`warm_shim.py`) that hands each step, with its argv, environment,
working directory and stdio, to the server; the server forks a child that runs the very same
`kfp.dsl.executor_main`. The compiled YAML, kfp.local's orchestration and the executor are unchanged: only
the interpreter is warm. A step the server cannot take runs cold, as before.

kfp.local resolves `python3` to `sys.executable` when it starts each step, so that is the seam: it points at
the stand-in while the pipeline runs and is restored afterwards. `PLINTH_WARM_STEPS=0` turns all this off
(every step a fresh interpreter, as on a cluster). `python -m pipelines.warm_steps SOCKET PARENT_PID
MODULE...` is the server.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import runpy
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

WARM_STEPS_ENV = "PLINTH_WARM_STEPS"
SHIM = Path(__file__).with_name("warm_shim.py")
EXECUTOR_MODULE = "kfp.dsl.executor_main"
# What the steps import, imported once by the server. Step code imports the rest on demand, as it would cold.
PRELOAD = (
    EXECUTOR_MODULE,
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.data.pandas_dataset",
    "components.ingest.core",
    "components.validate.core",
    "components.split.core",
    "components.common.candidate",
    "components.train_sklearn.core",
    "components.train_xgboost.core",
    "components.train_torch.core",
    "components.train_hgb.core",
    "components.evaluate.core",
    "components.gate.core",
    "components.register.core",
    "skops.io",
    "torch._dynamo",
)
BIND_TIMEOUT_S = 30.0
ACCEPT_POLL_S = 1.0
KEYBOARD_INTERRUPT_EXIT = 130


@dataclass(frozen=True)
class WarmServer:
    """A running step server: its process id, for callers that check where a step ran."""

    pid: int


def receive_exactly(connection: socket.socket, length: int) -> bytes:
    """Read `length` bytes from a stream socket."""
    chunks = bytearray()
    while len(chunks) < length:
        chunk = connection.recv(length - len(chunks))
        if not chunk:
            raise ConnectionError(f"the stand-in closed the connection after {len(chunks)} of {length} bytes")
        chunks.extend(chunk)
    return bytes(chunks)


def run_step(request: dict[str, object], fds: list[int]) -> int:
    """In the forked child: become the step's process and run the KFP executor; return its exit code."""
    for target, fd in enumerate(fds):
        if fd != target:
            os.dup2(fd, target)
            os.close(fd)
    os.chdir(str(request["cwd"]))
    env = request["env"]
    assert isinstance(env, dict)
    os.environ.clear()
    os.environ.update(env)
    argv = request["argv"]
    assert isinstance(argv, list)
    sys.argv = [EXECUTOR_MODULE, *argv]
    try:
        runpy.run_module(EXECUTOR_MODULE, run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return KEYBOARD_INTERRUPT_EXIT
    except Exception:  # what `python -m` does with an uncaught exception: print it, exit 1
        traceback.print_exc()
        return 1
    return 0


def leave(code: int) -> NoReturn:
    """End the forked step as the interpreter would, without tearing down the modules it shares with the server.

    Finalising the imported stack costs about 2 s per process (measured after a fork: `sys.exit` 2.0 s,
    `os._exit` 0.04 s) and changes nothing outside it; what does is kept: non-daemon threads joined, atexit
    handlers run (MLflow ends an active run, logging flushes its handlers), stdio flushed.
    """
    # The interpreter's own first exit step: run threading's exit hooks, which tell idle executor workers (MLflow's
    # artifact download pool) to stop, then join every non-daemon thread. Joining without the hooks waited
    # forever on an idle pool worker (the register step, after downloading a model to explain it).
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve_one(connection: socket.socket) -> None:
    """Take one step from a stand-in: fork it, tell the stand-in its pid, then its wait status."""
    header, fds, _flags, _address = socket.recv_fds(connection, 4, 3)
    (length,) = struct.unpack("!I", header)
    request = json.loads(receive_exactly(connection, length))
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        leave(run_step(request, fds))
    for fd in fds:
        os.close(fd)
    send_line(connection, pid)
    _, status = os.waitpid(pid, 0)
    send_line(connection, status)


def send_line(connection: socket.socket, value: int) -> bool:
    """Send one number to the stand-in; a stand-in that is gone is logged, not fatal to the server."""
    try:
        connection.sendall(f"{value}\n".encode())
    except OSError as error:
        print(f"warm steps: the stand-in went away: {error}", file=sys.stderr)
        return False
    return True


def serve(socket_path: str, parent_pid: int, preload: Sequence[str]) -> int:
    """Bind first (stand-ins queue while the stack imports), preload, then serve until the parent is gone."""
    os.environ["_KFP_RUNTIME"] = "true"  # what the step command sets before kfp is imported
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(8)
    for module in preload:
        importlib.import_module(module)
    listener.settimeout(ACCEPT_POLL_S)
    while os.getppid() == parent_pid:
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        connection.settimeout(None)
        with connection:
            serve_one(connection)
    return 0


def write_stand_in(directory: Path, socket_path: str) -> Path:
    """Write the `python3` kfp.local will run: a two-line script that execs the shim with the socket's path."""
    stand_in = directory / "python3"
    stand_in.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "{SHIM}" "{socket_path}" "$@"\n')
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    return stand_in


def wait_for_socket(server: subprocess.Popen[bytes], socket_path: str) -> bool:
    """Poll until the server has bound its socket; False when it exited first or took too long."""
    deadline = time.monotonic() + BIND_TIMEOUT_S
    while time.monotonic() < deadline:
        if os.path.exists(socket_path):
            return True
        if server.poll() is not None:
            return False
        time.sleep(0.02)
    return False


@contextmanager
def warm_steps(preload: Sequence[str] = PRELOAD) -> Iterator[WarmServer | None]:
    """Run kfp.local steps warm inside the block; yield the server, or None when warm steps are off.

    If the server fails (an import error, say), steps run cold and one line says so at the end.
    """
    if os.environ.get(WARM_STEPS_ENV, "1") == "0":
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="plinth-warm-") as runtime:
        socket_path = str(Path(runtime) / "steps.sock")
        log_path = Path(runtime) / "server.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "pipelines.warm_steps", socket_path, str(os.getpid()), *preload],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        real_executable = sys.executable
        try:
            if wait_for_socket(server, socket_path):
                sys.executable = str(write_stand_in(Path(runtime), socket_path))
            yield WarmServer(server.pid)
        finally:
            sys.executable = real_executable
            stopped_early = server.poll()
            server.terminate()
            server.wait(timeout=10)
            if stopped_early:
                lines = log_path.read_text(errors="replace").strip().splitlines() or ["(no output)"]
                print(f"plinth: warm steps were off, the step server stopped: {lines[-1]}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Serve steps: `python -m pipelines.warm_steps SOCKET PARENT_PID MODULE...`."""
    socket_path, parent_pid, *preload = argv or sys.argv[1:]
    return serve(socket_path, int(parent_pid), preload)


if __name__ == "__main__":
    sys.exit(main())
