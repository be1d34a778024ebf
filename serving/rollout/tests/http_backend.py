"""A tiny real HTTP service on 127.0.0.1 for router and pre-traffic tests: fixed answers, headers kept."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Backend:
    """A tiny service that answers `name` with `status` once `gate` is open, and keeps the headers it saw.

    `body` is the answer, or a function of the request's JSON that returns it (a hand-made model).
    """

    def __init__(self, name: str, status: int = 200, gate: threading.Event | None = None, body: Any = None) -> None:
        self.name, self.status = name, status
        self.body = [{"answered_by": name}] if body is None else body
        self.gate = gate or threading.Event()
        if gate is None:
            self.gate.set()
        self.seen: list[dict[str, str]] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                backend.seen.append({k.lower(): v for k, v in self.headers.items()})
                backend.gate.wait(30)
                body = json.dumps(backend.body(json.loads(raw)) if callable(backend.body) else backend.body).encode()
                self.send_response(backend.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `condition` until it holds (a readiness poll, not a sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False
