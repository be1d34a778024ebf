"""`/v2/...`: the Open Inference Protocol (V2) REST endpoints, beside /predict, for clients written for KServe/Triton.

An ASGI route rather than BentoML APIs (an API cannot take path parameters). It answers:

- `GET /v2` (server metadata), `GET /v2/health/live`, `GET /v2/health/ready`: the service's own /livez and
  /readyz, asked in process, so a refused or not yet warmed-up model is not ready here either (503);
- `GET /v2/models/{name}[/versions/{version}]` (metadata: one input per feature, outputs per task) and its
  `/ready`;
- `POST /v2/models/{name}[/versions/{version}]/infer`: the request is decoded (`v2_codec.py`) into the
  instances of a /predict request, which is sent to the service's own /predict in process: the same request
  model, batcher, metrics, request ids, prediction log, payload archive and drift caps; its answer is encoded
  back. The guard in front of the infer route (`guard.PredictGuard`, installed by `install`) checks the body
  size and the refused state first, as it does for /predict.

Errors are the protocol's `{"error": "..."}`: 404 for a model name or version not served here, 400 naming the
input for a wrong datatype, shape, missing or unknown input, or a value /predict refuses; the guard counts 4xx
answers of infer in `plinth_rejected_requests_total` by reason (named by the route), as /predict's.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from typing import Any

import bentoml

from serving.model_service import v2_codec
from serving.model_service.guard import (
    REASON_HEADER,
    ASGIApp,
    Message,
    PredictGuard,
    Receive,
    Scope,
    Send,
    _reason_for_400,
    _replay,
)
from serving.model_service.predictor import ServedTask
from serving.model_service.registry import ModelRef
from serving.model_service.settings import Settings

MODEL_PATH = re.compile(r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<operation>/ready|/infer)?")
INFER_PATH = re.compile(r"/v2/models/[^/]+(?:/versions/[^/]+)?/infer")
# An answer: status, JSON body, and the rejection reason the guard counts a 4xx by (None: its default).
Answer = tuple[int, dict[str, Any], str | None]
SERVER = {"name": "plinth", "version": importlib.metadata.version("plinth"), "extensions": []}


async def _send_json(send: Send, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps(payload).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def _read(receive: Receive) -> bytes:
    """Return the request body (the guard in front has read it once, within the size limit, and replays it)."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return b"".join(chunks)


class V2Route:
    """ASGI middleware answering every path under /v2 (404 for those it does not know); passes the rest on."""

    def __init__(
        self, app: ASGIApp, model: ModelRef, task: ServedTask, max_instances: int, predict_route: str = "/predict"
    ) -> None:
        self.app = app
        self.model = model
        self.task = task
        self.max_instances = max_instances
        self.predict_route = predict_route
        self.outputs = v2_codec.output_names(task)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a /v2 path; pass everything else on."""
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/v2" or path.startswith("/v2/")):
            await self.app(scope, receive, send)
            return
        method = "POST" if path.endswith("/infer") else "GET"
        if scope["method"] != method:
            answer = {"error": f"{scope['method']} {path}: use {method}"}
            await _send_json(send, 405, answer, [(b"allow", method.encode())])
            return
        status, payload, reason = await self._answer(scope, receive, path)
        await _send_json(send, status, payload, [(REASON_HEADER, reason.encode())] if reason else [])

    async def _answer(self, scope: Scope, receive: Receive, path: str) -> Answer:
        """Return the status and JSON answer of one /v2 request."""
        if path == "/v2":
            return 200, SERVER, None
        if path == "/v2/health/live":
            status, _ = await self._call(scope, receive, "GET", "/livez")
            return (200, {"live": True}, None) if status == 200 else (503, {"error": "the service is not live"}, None)
        if path == "/v2/health/ready":
            return (*await self._ready(scope, receive, {"ready": True}), None)
        match = MODEL_PATH.fullmatch(path)
        if match is None:
            return 404, {"error": f"{path}: not an Open Inference Protocol endpoint"}, None
        name, version, operation = match.group("name", "version", "operation")
        if name != self.model.name or version not in (None, self.model.version):
            served = f"{self.model.name} version {self.model.version}"
            shown = name if version is None else f"{name} version {version}"
            return 404, {"error": f"model {shown} is not served here; this service serves {served}"}, None
        if operation == "/ready":
            return (*await self._ready(scope, receive, {"name": name, "ready": True}), None)
        if operation == "/infer":
            return await self._infer(scope, receive)
        return 200, self.metadata(), None

    def metadata(self) -> dict[str, Any]:
        """Return the model metadata: one input per feature (its datatype, `[-1]` rows), outputs per task."""
        inputs = [
            {
                "name": c.name,
                "datatype": v2_codec.PUBLISHED[c.type],
                "shape": [-1],
                "parameters": {"optional": c.optional},
            }
            for c in self.model.columns
        ]
        return {
            "name": self.model.name,
            "versions": [self.model.version],
            "platform": "plinth",
            "inputs": inputs,
            "outputs": v2_codec.metadata_outputs(self.task),
        }

    async def _ready(self, scope: Scope, receive: Receive, ready: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Answer readiness from the service's own /readyz (a refused model never is)."""
        status, body = await self._call(scope, receive, "GET", "/readyz")
        if status == 200:
            return 200, ready
        why = body.decode("utf-8", "replace")[:500] or f"/readyz answered {status}"
        return 503, {"error": f"{self.model.name} version {self.model.version} is not ready: {why}"}

    async def _infer(self, scope: Scope, receive: Receive) -> Answer:
        """Decode the request, score it through /predict, and encode the answer (or the refusal)."""
        body = await _read(receive)
        try:
            if b"inference-header-content-length" in dict(scope.get("headers", [])):
                raise v2_codec.V2Error(
                    400, "body: binary tensor data is not supported: send JSON data", "invalid_shape"
                )
            inference = v2_codec.decode(body, self.model.columns, self.max_instances, self.outputs)
        except v2_codec.V2Error as error:
            return error.status, {"error": error.message}, error.reason
        request = json.dumps({"instances": inference.instances}).encode()
        status, answer = await self._call(scope, _replay(request, receive), "POST", self.predict_route)
        if status == 200:
            predictions = json.loads(answer)["predictions"]
            encoded = v2_codec.encode(self.task, predictions, inference.outputs, inference.request_id)
            return 200, {"model_name": self.model.name, "model_version": self.model.version, **encoded}, None
        if status == 400:
            return 400, {"error": v2_codec.error_from_predict(answer)}, _reason_for_400(answer)
        try:
            parsed = json.loads(answer)
        except ValueError:
            parsed = None
        said = parsed.get("error") if isinstance(parsed, dict) else None
        return status, {"error": str(said or answer.decode("utf-8", "replace") or f"/predict answered {status}")}, None

    async def _call(self, scope: Scope, receive: Receive, method: str, path: str) -> tuple[int, bytes]:
        """Send one request to the service's own app in process and return its status and body."""
        headers = [(k, v) for k, v in scope.get("headers", []) if k not in (b"content-type", b"content-length")]
        if method == "POST":
            headers.append((b"content-type", b"application/json"))
        inner = {**scope, "method": method, "path": path, "raw_path": path.encode(), "query_string": b""}
        inner["headers"] = headers
        status, body = 500, []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        await self.app(inner, receive if method == "POST" else _replay(b"", receive), capture)
        return status, b"".join(body)


def install(
    service: bentoml.Service[Any], model: ModelRef, task: ServedTask, settings: Settings, refusal: Exception | None
) -> None:
    """Add the V2 routes to `service`, behind a guard of the infer route with /predict's limits and refusal."""
    service.add_asgi_middleware(
        PredictGuard,
        route=INFER_PATH,
        max_body_bytes=settings.max_body_bytes,
        chaos_error_rate=settings.chaos_error_rate,
        chaos_latency_ms=settings.chaos_latency_ms,
        refusal=None if refusal is None else str(refusal),
        bare_body=True,
    )
    service.add_asgi_middleware(V2Route, model=model, task=task, max_instances=settings.max_instances)
