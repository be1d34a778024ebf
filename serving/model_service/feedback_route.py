"""`POST /feedback`: join a late ground-truth label to its logged prediction and score it live.

An ASGI route rather than a BentoML API, so that every refusal gets its exact status and the body
`{"error": reason, "detail": "..."}` (BentoML answers 500 to a body of the wrong type). Checks run in this
order, each answer counted in `plinth_feedback_total` by result:

- 415 / 413 / 400 `malformed`: not JSON, over MAX_BODY_BYTES, not an object, an unknown field, no string
  `request_id`, not exactly one of `label` (classifiers: one of the model's classes) or `value` (regression:
  a finite number); `detail` names the field.
- forwarded: the id was issued by another replica whose pod address it carries (each pod logs its own
  predictions): the body goes to that replica's `/feedback`, marked `x-plinth-forwarded`, and its answer is
  the answer (it counts the result); a replica that does not answer took its log with it: 410 `late`.
- 421 `misdirected`: the id was issued by another replica and cannot be forwarded (no pod address here or in
  the id, or the body was already forwarded once).
- 404 `unknown`: no prediction log for the id's version here, or no such id in it.
- 409 `duplicate`: the prediction already has its label.
- 410 `late`: the prediction is older than the age bound, or was evicted (its id's issue time is older
  than the oldest row still logged).
- 200 `accepted`: the label is stored and the live metrics of the prediction's version move.

With `PLINTH_FEEDBACK=off` (or a refused model) the route answers 404 `disabled`; a log that cannot be
read answers 503 `unavailable` and counts in `plinth_prediction_log_errors_total`.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from typing import Any

import anyio
import httpx

from serving.model_service.feedback import PredictionLog, names_address, parse_id, replica_address, replica_of
from serving.model_service.guard import ASGIApp, Receive, Scope, Send
from serving.model_service.monitor import (
    FEEDBACK,
    LIVE_ABSOLUTE_ERROR,
    LIVE_CORRECT,
    LIVE_LOG_LOSS,
    PREDICTION_LOG_ERRORS,
)
from serving.model_service.predictor import ServedTask

MAX_BODY_BYTES = 65_536
FORWARDED_HEADER = "x-plinth-forwarded"
FORWARD_TIMEOUT_S = 2.0
MIN_PROBABILITY = 1e-15
FIELDS = ("request_id", "label", "value")
ERRORS = ("malformed", "unknown", "duplicate", "late", "misdirected", "disabled", "unavailable")


class Refusal(Exception):
    """A feedback that is not accepted: its status, reason and a detail naming what is wrong."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_body(body: bytes) -> tuple[str, str, Any]:
    """Return (request_id, "label" or "value", the given truth) of a feedback body, or refuse it 400."""
    try:
        data = json.loads(body, parse_constant=_no_constants)
    except ValueError as error:
        raise Refusal(400, "malformed", f"body: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise Refusal(400, "malformed", "body: must be a JSON object with request_id and label or value")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise Refusal(400, "malformed", f"{', '.join(unknown)}: unknown field(s); expected {', '.join(FIELDS)}")
    request_id = data.get("request_id")
    if request_id is None:
        raise Refusal(400, "malformed", "request_id: missing (the request_id of the prediction being labelled)")
    if not isinstance(request_id, str) or not request_id:
        raise Refusal(400, "malformed", "request_id: must be a non-empty string")
    given = [field for field in ("label", "value") if field in data]
    if len(given) != 1:
        which = "both given" if given else "neither given"
        raise Refusal(400, "malformed", f"label, value: give exactly one ({which})")
    return request_id, given[0], data[given[0]]


def _same(given: Any, label: Any) -> bool:
    """Whether a JSON label names a class as JSON Schema's `enum` compares them (true is not 1)."""
    if isinstance(given, bool) or isinstance(label, bool):
        return given is label
    return bool(given == label)


def truth_of(task: ServedTask, field: str, given: Any) -> str | float:
    """Return the truth a feedback gives, checked against the task: a class name, or a finite value."""
    if task.kind == "regression":
        if field != "value":
            raise Refusal(400, "malformed", "label: this model is a regression; give value (a number)")
        if isinstance(given, bool) or not isinstance(given, int | float):
            raise Refusal(400, "malformed", "value: must be a number")
        try:
            value = float(given)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            raise Refusal(400, "malformed", "value: must be finite")
        return value
    if field != "label":
        raise Refusal(400, "malformed", f"value: this model is a {task.kind} classifier; give label (a class)")
    if not isinstance(given, str | int | float | bool):
        raise Refusal(400, "malformed", "label: must be a string, number or boolean")
    if not task.classes:
        return str(given)
    for label in task.classes:
        if _same(given, label):
            return str(label)
    raise Refusal(400, "malformed", f"label: {given!r} is not one of the model's classes {list(task.classes)}")


class Forwarder:
    """Sends a label to the replica that logged its prediction, at the pod address its request id carries."""

    def __init__(self, port: int, timeout_s: float = FORWARD_TIMEOUT_S) -> None:
        self.port, self.timeout_s = port, timeout_s

    def send(self, replica: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Return the other replica's status and answer; refuse as late when it does not answer."""
        address = replica_address(replica)
        headers = {"content-type": "application/json", FORWARDED_HEADER: "1"}
        try:
            answer = httpx.post(
                f"http://{address}:{self.port}/feedback", content=body, headers=headers, timeout=self.timeout_s
            )
            return answer.status_code, answer.json()
        except (httpx.HTTPError, ValueError) as error:
            raise Refusal(
                410,
                "late",
                f"request_id: the replica that answered it ({address}) does not answer ({type(error).__name__}): "
                "its prediction log is gone with it",
            ) from error


class Judge:
    """Decides one feedback against the prediction logs and moves the live metrics of accepted ones."""

    def __init__(
        self,
        log: PredictionLog | None,
        model_name: str,
        model_version: str,
        task: ServedTask,
        max_age_s: float,
        pod_ip: str = "",
        forwarder: Forwarder | None = None,
    ) -> None:
        self.log = log
        self.model_name = model_name
        self.version = model_version
        self.task = task
        self.max_age_ms = int(max_age_s * 1000)
        self.replica = replica_of(pod_ip=pod_ip)
        # Only a replica that knows its own pod address issues ids that name one, and forwards to them.
        self.forwarder = forwarder if names_address(pod_ip) else None

    def decide(self, body: bytes, forwarded: bool = False) -> tuple[int, dict[str, Any]]:
        """Return the status and JSON answer to a feedback body (blocking: run it off the event loop)."""
        if self.log is None:
            detail = "feedback is off here (PLINTH_FEEDBACK=off, or the model was refused)"
            return 404, {"error": "disabled", "detail": detail}
        version = self.version
        try:
            request_id, field, given = read_body(body)
            issued = parse_id(request_id)
            if issued is not None and issued[1] != self.replica:
                if self.forwarder is not None and not forwarded:
                    return self.forwarder.send(issued[1], body)  # the replica that logged it counts the result
                raise Refusal(421, "misdirected", f"request_id: issued by replica {issued[1]}, this is {self.replica}")
            task = self.log.task(issued[0]) if issued is not None else None
            if task is not None and issued is not None:
                version = issued[0]
            truth = truth_of(task or self.task, field, given)
            if task is None or issued is None:
                raise Refusal(404, "unknown", "request_id: no prediction with this id was logged here")
            self._join(version, request_id, issued[2], task, truth)
        except Refusal as refusal:
            FEEDBACK.labels(self.model_name, version, refusal.reason).inc()
            return refusal.status, {"error": refusal.reason, "detail": refusal.detail}
        except (sqlite3.Error, OSError) as error:
            PREDICTION_LOG_ERRORS.labels(self.model_name, version).inc()
            return 503, {"error": "unavailable", "detail": f"the prediction log cannot be read: {error}"}
        FEEDBACK.labels(self.model_name, version, "accepted").inc()
        return 200, {"request_id": request_id, "result": "accepted", "model_version": version}

    def _join(self, version: str, request_id: str, issued_ms: int, task: ServedTask, truth: str | float) -> None:
        """Label the logged prediction and score it, or refuse: unknown, late or duplicate."""
        assert self.log is not None
        logged, oldest_ms = self.log.find(version, request_id)
        now_ms = int(time.time() * 1000)
        if logged is None:
            if now_ms - issued_ms >= self.max_age_ms or (oldest_ms is not None and issued_ms <= oldest_ms):
                raise Refusal(410, "late", "request_id: the prediction was dropped from the log (too old or full)")
            raise Refusal(404, "unknown", "request_id: no prediction with this id was logged here")
        if logged.labelled:
            raise Refusal(409, "duplicate", "request_id: this prediction already has its label")
        if now_ms - logged.time_ms >= self.max_age_ms:
            raise Refusal(410, "late", f"request_id: the prediction is older than {self.max_age_ms / 1000:g} s")
        if not self.log.label(version, request_id, truth):  # labelled by another worker since it was read
            raise Refusal(409, "duplicate", "request_id: this prediction already has its label")
        labels = (self.model_name, version)
        prediction = logged.prediction
        if isinstance(truth, float):
            LIVE_ABSOLUTE_ERROR.labels(*labels).observe(abs(float(prediction["prediction"]) - truth))
            return
        LIVE_CORRECT.labels(*labels).observe(1.0 if str(prediction["label"]) == truth else 0.0)
        probabilities = prediction.get("probabilities")
        if task.probabilities and isinstance(probabilities, dict):
            probability = float(probabilities.get(truth, 0.0))
            LIVE_LOG_LOSS.labels(*labels).observe(-math.log(max(probability, MIN_PROBABILITY)))


async def _answer(send: Send, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps(payload).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class FeedbackRoute:
    """ASGI middleware answering `POST /feedback` (405 for any other method there); passes the rest on."""

    def __init__(self, app: ASGIApp, judge: Judge, route: str = "/feedback") -> None:
        self.app = app
        self.judge = judge
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the feedback route; pass everything else on."""
        if scope["type"] != "http" or scope["path"] != self.route:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            detail = {"error": "malformed", "detail": f"{scope['method']}: use POST"}
            await _answer(send, 405, detail, [(b"allow", b"POST")])
            return
        status, payload = await self._decide(scope, receive)
        await _answer(send, status, payload, [])

    async def _decide(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        """Check the media type and size, then judge the body in a worker thread (SQLite blocks)."""
        headers = dict(scope["headers"])
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if self.judge.log is not None and media_type != b"application/json":
            shown = media_type.decode("latin-1") or "none"
            return self._refuse(415, f"Content-Type: must be application/json, got {shown}")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_BODY_BYTES:
                return self._refuse(413, f"body: over {MAX_BODY_BYTES} bytes")
            if not message.get("more_body", False):
                break
        forwarded = FORWARDED_HEADER.encode() in headers
        return await anyio.to_thread.run_sync(self.judge.decide, b"".join(chunks), forwarded)

    def _refuse(self, status: int, detail: str) -> tuple[int, dict[str, Any]]:
        FEEDBACK.labels(self.judge.model_name, self.judge.version, "malformed").inc()
        return status, {"error": "malformed", "detail": detail}
