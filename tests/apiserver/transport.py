"""The seam under the real `kubernetes` client: a urllib3 pool manager that answers from the stand-in.

`ApiClient(Configuration(host=...))` with `client.rest_client.pool_manager = Transport(server)` keeps all of the
client (request building, serialization, Content-Type choice, error mapping into ApiException) and swaps only
the socket. Each transport carries its client's identity, so a GitOps agent's client writes as another user.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse

from kubernetes.client import ApiClient, Configuration
from urllib3 import HTTPResponse

from tests.apiserver.server import ApiServer

HOST = "https://k8s.invalid"


class Transport:
    """urllib3's `PoolManager.request` for the stand-in, as `user`."""

    def __init__(self, server: ApiServer, user: str | None = None) -> None:
        self.server, self.user = server, user

    def request(
        self, method: str, url: str, body: Any = None, fields: Any = None, headers: Any = None, **_: Any
    ) -> HTTPResponse:
        """Answer one HTTP request of the client (raising urllib3's error while the server is unreachable)."""
        self.server.faults.connect(url)
        parsed = urlparse(url)
        query = dict(parse_qsl(parsed.query))
        if fields and method in ("GET", "HEAD", "DELETE"):
            query.update({k: str(v) for k, v in (fields.items() if isinstance(fields, dict) else fields)})
        raw = body.encode() if isinstance(body, str) else body
        status, data = self.server.handle(method, parsed.path, query, dict(headers or {}), raw, self.user)
        return HTTPResponse(
            body=json.dumps(data).encode(),
            status=status,
            reason=HTTPStatus(status).phrase,
            headers={"Content-Type": "application/json"},
            preload_content=True,
        )


def api_client(server: ApiServer, user: str | None = None) -> ApiClient:
    """A real API client whose transport is the stand-in (as `user`, else the server's default user)."""
    client = ApiClient(Configuration(host=HOST))
    client.rest_client.pool_manager = Transport(server, user)
    return client


def url(path: str, **query: str) -> str:
    return f"{HOST}{path}{'?' + urlencode(query) if query else ''}"
