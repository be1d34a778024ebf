"""The signer service: signs a registered model version after checking it, holding a key no pipeline step can read.

`python -m serving.signer --port 8080 --tracking-uri http://mlflow…:5000` reads the private key from
PLINTH_SIGNING_KEY (a file: the Secret `plinth-signing-key` mounted in its own namespace) and answers:

- `POST /sign` with `{"name": "m", "version": "7"}`: the checks and the signature of
  `components/common/attest.py`; 200 `{"digest", "key"}` when signed, 403 `{"error": reason}` when refused,
  400 naming the field for a malformed body, 413 for a body over MAX_BODY, 503 when MLflow or the artifact
  store failed (the register step fails too, and deletes its version);
- `GET /healthz` ("ok"), `GET /metrics` (`plinth_signer_requests_total{result}`).

The caller sends nothing but the name and the version: everything the signature states is read by the
signer itself from the registry and the files.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from prometheus_client import Counter
from requests import RequestException

from components.common import attest, signing
from components.common.plain_http import EndpointHandler

LOG = logging.getLogger("plinth.signer")
MAX_BODY = 4096  # a name and a version
SOCKET_TIMEOUT_S = 30  # a client that stops sending mid-request frees its thread
SIGNED, REFUSED, BAD_REQUEST, FAILED = "signed", "refused", "bad_request", "failed"
REQUESTS = Counter("plinth_signer_requests", "Signing requests, by result.", ["result"])


class BadRequest(ValueError):
    """The body is not `{"name": str, "version": digits}`; the message names the field."""


def parse(body: bytes) -> tuple[str, str]:
    """Return (name, version) from a request body.

    Raises:
        BadRequest: not a JSON object, or `name` / `version` missing or malformed.
    """
    try:
        data = json.loads(body)
    except ValueError as error:
        raise BadRequest(f"body is not JSON ({error.__class__.__name__})") from error
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object with fields name and version")
    name, version = data.get("name"), data.get("version")
    if not isinstance(name, str) or not name.strip() or len(name) > 256:
        raise BadRequest("field name must be a registered model's name (a non-empty string)")
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not version.isdigit():
        raise BadRequest("field version must be a model version number (digits)")
    return name, version


def make_handler(client: MlflowClient, key: Path) -> type[BaseHTTPRequestHandler]:
    """Return the request handler class that signs with `key` against `client`'s registry."""
    lock = threading.Lock()  # one signature at a time: two requests for one version must not interleave uploads

    class Handler(EndpointHandler):
        timeout = SOCKET_TIMEOUT_S
        routes = "POST /sign, GET /metrics, GET /healthz"

        def _refuse(self, status: int, result: str, reason: str) -> None:
            REQUESTS.labels(result).inc()
            LOG.info("%s (%d): %s", result, status, reason)
            self._answer(status, {"error": reason})

        def do_POST(self) -> None:
            if self.path != "/sign":
                self._answer(404, {"error": f"no such path {self.path}; POST /sign"})
                return
            try:
                length = int(self.headers.get("Content-Length") or -1)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                self._refuse(
                    413, BAD_REQUEST, f"Content-Length: {self.headers.get('Content-Length')!r}, at most {MAX_BODY}"
                )
                return
            try:
                name, version = parse(self.rfile.read(length))
                with lock:
                    signed = attest.sign_version(client, name, version, key)
            except BadRequest as error:
                self._refuse(400, BAD_REQUEST, str(error))
                return
            except attest.Refused as error:
                self._refuse(403, REFUSED, f"{name} v{version} not signed: {error}")
                return
            except (MlflowException, RequestException, OSError) as error:
                self._refuse(503, FAILED, f"registry or artifact store failed: {str(error).splitlines()[0][:200]}")
                return
            except Exception as error:  # a bug or a garbled registry entry: said, logged, counted, nothing signed
                LOG.exception("signing %s v%s failed", name, version)
                self._refuse(
                    500, FAILED, f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
                )
                return
            REQUESTS.labels(SIGNED).inc()
            LOG.info("signed %s v%s (%s)", name, version, signed.digest)
            self._answer(200, {"name": name, "version": version, "digest": signed.digest, "key": signed.key})

        def log_message(self, format: str, *args: Any) -> None:
            LOG.debug(format, *args)

    return Handler


def serve(client: MlflowClient, key: Path, host: str, port: int) -> ThreadingHTTPServer:
    """Return the signer bound to host:port (call `serve_forever`, or run it in a thread)."""
    if not key.is_file():
        raise signing.SigningError(f"{signing.ENV_SIGNING_KEY}={key} is not a file")
    server = ThreadingHTTPServer((host, port), make_handler(client, key))
    server.daemon_threads = True
    return server
