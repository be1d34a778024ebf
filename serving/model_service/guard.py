"""ASGI middleware in front of /predict: what BentoML does not check itself, and rejection accounting.

BentoML reads any body size and parses any content type it knows; this layer answers 415 for anything
but JSON and 413 for bodies over the limit (checked on Content-Length and while streaming), turns the
batcher's "overloaded" 503 into 429, counts every 4xx by reason, and gives a 400 that BentoML answers as a
JSON list (an error raised in the API) the object shape the contract publishes. A service whose model was
refused (its files failed their signature check) answers every call 503 with the reason, before reading
it. It also hosts the two chaos knobs used by rollout drills, which are off unless their environment
variables are set. The same guard, given a path pattern, covers the Open Inference Protocol's infer route
(`v2_route.install`).

Mirrored copies of live traffic (a rollout's shadow phase) are counted apart, by status class, in
`plinth_mirrored_requests_total`, so the live share of a track's requests is the total minus that. A copy is
marked by the local router's `x-plinth-mirror` header, or by the `-shadow` suffix Envoy-based gateways
append to the Host of a Gateway API `RequestMirror` copy.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from serving.model_service.monitor import MIRRORED_REQUESTS, REJECTED_REQUESTS
from serving.model_service.settings import MIRROR_HEADER
from serving.model_service.trace import TRACE, trace_of

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
SHADOW_HOST_SUFFIX = b"-shadow"
# A route behind the guard may name the rejection reason of its 4xx answer in this header (removed before sending).
REASON_HEADER = b"x-plinth-rejection"

# pydantic error types -> rejection reasons; anything else that is a 400 counts as invalid_value.
_REASON_BY_ERROR = {
    "json_invalid": "invalid_json",
    "json_type": "invalid_json",
    "model_type": "invalid_shape",
    "model_attributes_type": "invalid_shape",
    "list_type": "invalid_shape",
    "value_error": "invalid_shape",
    "missing": "missing_feature",
    "extra_forbidden": "unknown_feature",
    "too_short": "batch_size",
    "too_long": "batch_size",
}


def _reason_for_400(body: bytes) -> str:
    """Name the rejection reason from BentoML's 400 body (pydantic's first error type)."""
    try:
        detail = json.loads(body).get("detail") or [{}]
        error_type = str(detail[0].get("type", ""))
    except (ValueError, AttributeError, IndexError, TypeError):
        return "invalid_value"
    if error_type == "missing" and len(detail[0].get("loc", ())) <= 1:
        return "invalid_shape"
    return _REASON_BY_ERROR.get(error_type, "invalid_value")


async def _reply(send: Send, status: int, error: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class PredictGuard:
    """Guard one route: content type, body size, overload status, chaos, and 4xx accounting."""

    def __init__(
        self,
        app: ASGIApp,
        route: str | re.Pattern[str] = "/predict",
        max_body_bytes: int = 1_048_576,
        chaos_error_rate: float = 0.0,
        chaos_latency_ms: float = 0.0,
        refusal: str | None = None,
        bare_body: bool = False,
        count_errors: bool = True,
    ) -> None:
        """Guard `route` (a path, or a pattern the whole path matches).

        `bare_body`: a body without Content-Type passes too (Triton's client sends none on /v2 infer).
        `count_errors`: count the 4xx answers of the route by reason (off where the route counts its own).
        """
        self.app = app
        self.route = route
        self.bare_body = bare_body
        self.count_errors = count_errors
        self.refusal = refusal
        self.max_body_bytes = max_body_bytes
        self.chaos_error_rate = chaos_error_rate
        self.chaos_latency_s = chaos_latency_ms / 1000

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check and pass on a POST to the guarded route; every other request passes untouched."""
        if scope["type"] != "http" or scope["method"] != "POST" or not self._guards(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        mirrored = is_mirrored(headers)
        if mirrored:
            send = _count_mirrored(send)
        TRACE.set(trace_of(headers, mirrored))  # stored with the request's predictions (`trace.py`)
        if self.refusal is not None:
            await _reply(send, 503, self.refusal)
            return
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if media_type != b"application/json" and not (self.bare_body and not media_type):
            if self.count_errors:
                REJECTED_REQUESTS.labels("content_type").inc()
            shown = media_type.decode("latin-1") or "none"
            await _reply(send, 415, f"Content-Type must be application/json, got {shown}")
            return
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send)
            return
        body = await self._read_body(receive)
        if body is None:
            await self._too_large(send)
            return
        if self.chaos_latency_s:
            await asyncio.sleep(self.chaos_latency_s)
        if self.chaos_error_rate and random.random() < self.chaos_error_rate:
            await _reply(send, 500, f"chaos: injected error (rate {self.chaos_error_rate:g})")
            return
        await self.app(scope, _replay(body, receive), _Responder(send, self.count_errors).send)

    def _guards(self, path: str) -> bool:
        if isinstance(self.route, str):
            return path == self.route
        return self.route.fullmatch(path) is not None

    async def _too_large(self, send: Send) -> None:
        if self.count_errors:
            REJECTED_REQUESTS.labels("body_too_large").inc()
        await _reply(send, 413, f"request body exceeds the limit of {self.max_body_bytes} bytes")

    async def _read_body(self, receive: Receive) -> bytes | None:
        """Read the whole body, or return None as soon as it passes the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def is_mirrored(headers: dict[bytes, bytes]) -> bool:
    """Return whether a request is a mirrored copy: the router's header, or a gateway's `-shadow` Host."""
    host = headers.get(b"host", b"")
    shadowed = host.endswith(SHADOW_HOST_SUFFIX) or host.split(b":")[0].endswith(SHADOW_HOST_SUFFIX)
    return MIRROR_HEADER.encode() in headers or shadowed


def _count_mirrored(send: Send) -> Send:
    """Wrap `send` so the answer to a mirrored copy is counted by its status class."""

    async def counted(message: Message) -> None:
        if message["type"] == "http.response.start":
            MIRRORED_REQUESTS.labels(f"{int(message['status']) // 100}xx").inc()
        await send(message)

    return counted


def _replay(body: bytes, receive: Receive) -> Receive:
    """Return a receive callable that hands over the already-read body, then passes disconnects through."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class _Responder:
    """Wraps `send`: overload 503 becomes 429, 4xx answers are counted by reason and keep the published shape.

    BentoML answers an InvalidArgument raised in the API as a JSON list holding the error object; the client
    gets the object, as the contract says.
    """

    def __init__(self, send: Send, count_errors: bool = True) -> None:
        self._send = send
        self.count_errors = count_errors
        self.replaced = False
        self.held: Message | None = None
        self.chunks: list[bytes] = []

    async def send(self, message: Message) -> None:
        if self.replaced:
            return
        if message["type"] == "http.response.start":
            status = int(message["status"])
            if status == 503:
                self.replaced = True
                REJECTED_REQUESTS.labels("overloaded").inc()
                await _reply(self._send, 429, "overloaded: retry later", [(b"retry-after", b"1")])
                return
            if 400 <= status < 500 and status != 429:
                self.held = message  # sent with the whole body, once it is known
                return
        elif message["type"] == "http.response.body" and self.held is not None:
            self.chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await self._send_error(self.held, b"".join(self.chunks))
            return
        await self._send(message)

    async def _send_error(self, start: Message, body: bytes) -> None:
        """Count one 4xx by reason and send it, a list-shaped error body unwrapped to its object."""
        status = int(start["status"])
        given = dict(start.get("headers", [])).get(REASON_HEADER)  # a route that names its reason (/v2 infer)
        if self.count_errors:
            reason = given.decode() if given else _reason_for_400(body) if status == 400 else "invalid_value"
            REJECTED_REQUESTS.labels(reason).inc()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and len(parsed) == 1 and isinstance(parsed[0], dict):
            body = json.dumps(parsed[0]).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length", REASON_HEADER)]
        headers.append((b"content-length", str(len(body)).encode()))
        await self._send({**start, "headers": headers})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})
