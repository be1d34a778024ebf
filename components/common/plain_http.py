"""The small HTTP endpoints plinth runs beside its services (the trigger receiver, the signer): one base.

Both are plain `http.server` processes with one POST route, `GET /metrics` (Prometheus) and `GET /healthz`; the
base holds what they share: JSON or bytes answers with a length, extra headers, and the two GET routes. The
socket timeout (`timeout`, which StreamRequestHandler sets on the socket) is each endpoint's own, so a client
that stalls mid-request is dropped.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


class EndpointHandler(BaseHTTPRequestHandler):
    """A handler with `/metrics`, `/healthz` and `_answer`; subclasses add `do_POST` and name their routes."""

    # What a 404 lists, e.g. "POST /sign, GET /metrics, GET /healthz".
    routes = "GET /metrics, GET /healthz"

    def _answer(
        self,
        status: int,
        body: dict[str, Any] | bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        """Serve the process's Prometheus metrics and its health; anything else is a 404 naming the routes."""
        if self.path == "/metrics":
            self._answer(200, generate_latest(), CONTENT_TYPE_LATEST)
        elif self.path == "/healthz":
            self._answer(200, b"ok\n", "text/plain")
        else:
            self._answer(404, {"error": f"no such path {self.path}; {self.routes}"})
