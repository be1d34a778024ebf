"""The `python3` that kfp.local runs for a step while warm steps are on (see `pipelines/warm_steps.py`).

Runs as `python -I -S warm_shim.py SOCKET ARGS...`: standard library only, so it starts in milliseconds. A
step (`-m kfp.dsl.executor_main ...`) is handed, with its working directory, environment and stdio, to the
warm server, which forks it from a process that has already imported the stack; this process waits and
exits with the step's exit code, passing Ctrl-C and termination on to it. Anything else, and a step the
server cannot take, runs in the real interpreter exactly as kfp.local asked.
"""

import json
import os
import signal
import socket
import struct
import sys

EXECUTOR = ["-m", "kfp.dsl.executor_main"]
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_cold(args: list[str]) -> None:
    """Replace this process with the real interpreter running `args`."""
    os.execv(sys.executable, [sys.executable, *args])


def hand_over(socket_path: str, args: list[str]) -> socket.socket | None:
    """Send the step to the server; return the connection, or None when the server cannot take it."""
    request = json.dumps({"argv": args[1:], "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(socket_path)
        socket.send_fds(connection, [struct.pack("!I", len(request))], [0, 1, 2])
        connection.sendall(request)
    except OSError:
        connection.close()
        return None
    return connection


def exit_code(status: int) -> int:
    """Translate a wait status into what a shell reports: the exit code, or 128 + the signal."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def main() -> int:
    """Run the step warm when the server takes it, cold otherwise."""
    socket_path, args = sys.argv[1], sys.argv[2:]
    if args[:2] != EXECUTOR:
        run_cold(args)
    connection = hand_over(socket_path, args)
    if connection is None:
        run_cold(args)
        return 1
    replies = connection.makefile("r", encoding="utf-8")
    pid_line = replies.readline()
    if not pid_line:
        # The server went away before it forked: the step has not started, so it may run cold.
        run_cold(args)
        return 1
    pid = int(pid_line)
    for forwarded in FORWARDED_SIGNALS:
        signal.signal(forwarded, lambda number, _frame: os.kill(pid, number))
    status_line = replies.readline()
    if not status_line:
        print(f"plinth warm steps: the server stopped while step process {pid} ran", file=sys.stderr)
        return 1
    return exit_code(int(status_line))


if __name__ == "__main__":
    sys.exit(main())
