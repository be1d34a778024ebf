"""The stand-in over HTTP, for real clients: `kubectl` (diff, apply, get, annotate) and anything reading a kubeconfig.

A `ThreadingHTTPServer` on 127.0.0.1 (a free port; https with `tls.py`'s certificate, since client-go sends no
bearer token over plain http) in front of `ApiServer.handle`, one request at a
time into it (the stand-in is not thread-safe; the API server's own concurrency is not what is tested). It
answers discovery (`discovery.py`), authenticates a bearer token to a user as the API server's token
authenticator does (401 for none or an unknown one; `Impersonate-User` only for the admin, as RBAC's
`impersonate` verb would allow it), and passes the query (`fieldManager`, `force`, `dryRun`,
`fieldValidation`) through. The `unreachable` knob drops that many connections unanswered, which clients
report as a failed connection. `kubeconfig()` writes a file with one context per identity.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from tests.apiserver.discovery import answer
from tests.apiserver.errors import ApiError
from tests.apiserver.server import ApiServer
from tests.apiserver.tls import self_signed

PROTOBUF_OPENAPI = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
ADMIN = "kubernetes-admin"
AGENT = "system:serviceaccount:flux-system:kustomize-controller"


class Handler(BaseHTTPRequestHandler):
    """One HTTP request to the stand-in."""

    server: StandinHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet: the paths are in `HttpApiServer.paths`."""

    def do_GET(self) -> None:
        """GET: discovery, a read or a list."""
        self.answer()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def answer(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        with owner.lock:
            owner.paths.append((self.command, self.path))
            if owner.api.faults.unreachable:
                owner.api.faults.unreachable -= 1
                self.close_connection = True
                return
            status, data, warnings = owner.respond(self.command, self.path, dict(self.headers.items()), body)
        payload = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", PROTOBUF_OPENAPI if isinstance(data, bytes) else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for warning in warnings:
            quoted = warning.replace("\\", "\\\\").replace('"', '\\"')
            self.send_header("Warning", f'299 - "{quoted}"')
        self.end_headers()
        self.wfile.write(payload)


class StandinHTTPServer(ThreadingHTTPServer):
    """The socket server, knowing the `HttpApiServer` it serves."""

    daemon_threads = True

    def __init__(self, owner: HttpApiServer) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.owner = owner
        certificate, key = self_signed()
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "tls.crt").write_bytes(certificate)
            (Path(folder) / "tls.key").write_bytes(key)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(Path(folder) / "tls.crt", Path(folder) / "tls.key")
        self.socket = context.wrap_socket(self.socket, server_side=True)


class HttpApiServer:
    """`api` (an `ApiServer`) on http://127.0.0.1:<port>, with bearer tokens mapped to users."""

    def __init__(self, api: ApiServer | None = None, tokens: dict[str, str] | None = None) -> None:
        self.api = api or ApiServer()
        self.tokens = tokens or {"admin": ADMIN, "agent": AGENT, "controller": self.api.user}
        self.lock = threading.Lock()
        self.paths: list[tuple[str, str]] = []
        self.httpd: StandinHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`https://127.0.0.1:<port>` while started."""
        assert self.httpd is not None, "not started"
        return f"https://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> HttpApiServer:
        """Listen on a free port of 127.0.0.1 and serve in a thread."""
        self.httpd = StandinHTTPServer(self)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="apiserver-standin", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
        if self.thread is not None:
            self.thread.join()
        self.httpd = self.thread = None

    def user_of(self, headers: dict[str, str]) -> str:
        """The authenticated (and maybe impersonated) user; ApiError 401/403 otherwise."""
        said = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        user = self.tokens.get(said.removeprefix("Bearer ").strip()) if said.startswith("Bearer ") else None
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        wanted = next((v for k, v in headers.items() if k.lower() == "impersonate-user"), None)
        if wanted and wanted != user:
            if user != ADMIN:
                raise ApiError(403, "Forbidden", f'users "{wanted}" is forbidden: User "{user}" cannot impersonate')
            return wanted
        return user

    def respond(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, Any] | bytes, list[str]]:
        """Status, JSON and warnings for one request."""
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query))
        try:
            user = self.user_of(headers)
            found = answer(parts.path, self.url) if method == "GET" else None
        except ApiError as error:
            return error.code, error.status(), []
        if found is not None:
            return 200, found, []
        status, data = self.api.handle(method, parts.path, query, headers, body, user)
        return status, data, list(self.api.warnings)

    def kubeconfig(self, path: Path, current: str = "admin") -> Path:
        """Write a kubeconfig with one context (and user) per token, `current` first; return its path."""
        authority = base64.b64encode(self_signed()[0]).decode()
        contexts = [{"name": t, "context": {"cluster": "standin", "user": t}} for t in self.tokens]
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "standin", "cluster": {"server": self.url, "certificate-authority-data": authority}}],
            "users": [{"name": token, "user": {"token": token}} for token in self.tokens],
            "contexts": contexts,
            "current-context": current,
            "preferences": {},
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path


@contextmanager
def serving(api: ApiServer | None = None) -> Iterator[HttpApiServer]:
    """An `HttpApiServer` started for the block and stopped after it."""
    server = HttpApiServer(api).start()
    try:
        yield server
    finally:
        server.stop()
