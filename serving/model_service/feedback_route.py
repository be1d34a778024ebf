"""`POST /feedback`: join a late ground-truth label to its stored prediction, and store it with its scores.

An ASGI route rather than a BentoML API, so that every refusal gets its exact status and the body
`{"error": reason, "detail": "..."}` (BentoML answers 500 to a body of the wrong type). Checks run in this
order, each answer counted in `plinth_feedback_total` by result (and, once the client is known, in
`plinth_feedback_by_client_total`):

- 401 `unauthenticated`: no `Authorization: Bearer <token>` of a configured labelling client (`clients.py`);
  answered before the body is read, with `WWW-Authenticate: Bearer`. Nothing else changes.
- 429 `rate_limited`: the client is over its rate (`Retry-After` says when to send again).
- 415 / 413 / 400 `malformed`: not JSON, over MAX_BODY_BYTES, not an object, an unknown field, no string
  `request_id`, not exactly one of `label` (classifiers: one of the model's classes; classes unknown: at
  most MAX_LABEL_CHARS characters), `value` (regression: a finite number) or `outcome` (any task: a finite
  business value the answer earned, e.g. revenue or a click as 1, which A/B experiments are judged on);
  `detail` names the field.
- 404 `unknown`: no prediction with this id is in the store (one written a moment ago by another worker or
  replica is waited for, up to SETTLE_S after its id's issue time).
- 409 `duplicate`: the prediction already has its label (or its outcome: one of each per prediction).
- 410 `late`: the prediction is older than the age bound (or was purged for age: its id's issue time says so).
- 200 `accepted`: the label is stored, with what it scored (right or wrong, log loss, absolute error); the
  live-quality exporter (`live_quality.py`) reads it from the store.

Any replica of any version accepts any label: the store is shared. With `PLINTH_FEEDBACK=off` (or a refused
model) the route answers 404 `disabled`; a store that cannot be reached answers 503 `store_unavailable` and
counts in `plinth_prediction_store_errors_total{operation="read"}`.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any

import anyio

from serving.model_service.clients import Clients, retry_after
from serving.model_service.feedback import parse_id
from serving.model_service.guard import ASGIApp, Receive, Scope, Send
from serving.model_service.monitor import FEEDBACK, FEEDBACK_BY_CLIENT, STORE_ERRORS
from serving.model_service.predictor import ServedTask
from serving.model_service.store import Found, PredictionStore, Scores, StoreError

if TYPE_CHECKING:
    from serving.model_service.archive import PayloadArchive
    from serving.model_service.recorder import Recorder

# A request id and one label fit in well under 1 KiB; nothing bigger is a label.
MAX_BODY_BYTES = 4096
MAX_LABEL_CHARS = 256
# A label for an id issued less than this long ago may find its prediction still queued in a writer.
SETTLE_S = 2.0
SETTLE_POLL_S = 0.05
MIN_PROBABILITY = 1e-15
FIELDS = ("request_id", "label", "value", "outcome")
ERRORS = (
    "malformed",
    "unknown",
    "duplicate",
    "late",
    "disabled",
    "store_unavailable",
    "unauthenticated",
    "rate_limited",
)


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
    given = [field for field in FIELDS[1:] if field in data]
    if len(given) != 1:
        which = f"{' and '.join(given)} given" if given else "none given"
        raise Refusal(400, "malformed", f"label, value, outcome: give exactly one ({which})")
    return request_id, given[0], data[given[0]]


def _same(given: Any, label: Any) -> bool:
    """Whether a JSON label names a class as JSON Schema's `enum` compares them (true is not 1)."""
    if isinstance(given, bool) or isinstance(label, bool):
        return given is label
    return bool(given == label)


def finite(field: str, given: Any) -> float:
    """Return `given` as a finite float, or refuse it 400 naming `field`."""
    if isinstance(given, bool) or not isinstance(given, int | float):
        raise Refusal(400, "malformed", f"{field}: must be a number")
    try:
        value = float(given)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise Refusal(400, "malformed", f"{field}: must be finite")
    return value


def truth_of(task: ServedTask, field: str, given: Any) -> str | float:
    """Return the truth a feedback gives, checked against the task: a class name, or a finite value."""
    if field == "outcome":  # a business value, whatever the task
        return finite(field, given)
    if task.kind == "regression":
        if field != "value":
            raise Refusal(400, "malformed", "label: this model is a regression; give value (a number)")
        return finite(field, given)
    if field != "label":
        raise Refusal(400, "malformed", f"value: this model is a {task.kind} classifier; give label (a class)")
    if not isinstance(given, str | int | float | bool):
        raise Refusal(400, "malformed", "label: must be a string, number or boolean")
    if not task.classes:
        text = str(given)
        if len(text) > MAX_LABEL_CHARS:
            raise Refusal(400, "malformed", f"label: at most {MAX_LABEL_CHARS} characters (got {len(text)})")
        return text
    for label in task.classes:
        if _same(given, label):
            return str(label)
    raise Refusal(400, "malformed", f"label: {given!r} is not one of the model's classes {list(task.classes)}")


class Judge:
    """Decides one feedback against the prediction store and stores the accepted label with its scores."""

    def __init__(
        self, store: PredictionStore | None, model_name: str, model_version: str, task: ServedTask, max_age_s: float
    ) -> None:
        self.store = store
        self.model_name = model_name
        self.version = model_version
        self.task = task
        self.max_age_ms = int(max_age_s * 1000)
        # This worker's writer (set when the worker starts): its queue is flushed before an id is called unknown.
        self.recorder: Recorder | None = None
        # The payload archive an accepted label is also written to (set when the worker starts), if any.
        self.archive: PayloadArchive | None = None

    def count(self, version: str, result: str, client: str | None) -> None:
        """Count one answer, for its version and (when authenticated) its client."""
        FEEDBACK.labels(self.model_name, version, result).inc()
        if client is not None:
            FEEDBACK_BY_CLIENT.labels(client, result).inc()

    def decide(self, body: bytes, client: str | None = None) -> tuple[int, dict[str, Any]]:
        """Return the status and JSON answer to a feedback body (blocking: run it off the event loop)."""
        if self.store is None:
            detail = "feedback is off here (PLINTH_FEEDBACK=off, or the model was refused)"
            return 404, {"error": "disabled", "detail": detail}
        version = self.version
        try:
            request_id, field, given = read_body(body)
            issued = parse_id(request_id)
            found = self._find(request_id, issued[1]) if issued is not None else None
            if found is not None:
                version = found.model_version
            task = found.task if found is not None and found.task is not None else self.task
            truth = truth_of(task, field, given)
            self._join(request_id, issued, found, task, truth, outcome=field == "outcome")
        except Refusal as refusal:
            self.count(version, refusal.reason, client)
            return refusal.status, {"error": refusal.reason, "detail": refusal.detail}
        except StoreError as error:
            STORE_ERRORS.labels(self.model_name, version, "read").inc()
            self.count(version, "store_unavailable", client)
            return 503, {"error": "store_unavailable", "detail": f"the label was not stored: {error}"}
        self.count(version, "accepted", client)
        # The archive keeps labels: a class with its JSON type (1, not "1"), or the finite value; no outcomes.
        if self.archive is not None and field != "outcome":
            archived = truth if isinstance(truth, float) else given
            self.archive.label(self.model_name, version, request_id, archived, self.store.now_ms())
        return 200, {"request_id": request_id, "result": "accepted", "model_version": version}

    def _find(self, request_id: str, issued_ms: int) -> Found | None:
        """Return the stored prediction; one issued moments ago may still be queued: flush ours, wait for others'."""
        assert self.store is not None
        found = self.store.find(request_id)
        if found is not None or self.store.now_ms() - issued_ms > SETTLE_S * 1000:
            return found
        if self.recorder is not None:
            self.recorder.flush()
        deadline = time.monotonic() + SETTLE_S
        while (found := self.store.find(request_id)) is None and time.monotonic() < deadline:
            time.sleep(SETTLE_POLL_S)  # another replica's writer flushes every FLUSH_S
        return found

    def _join(
        self,
        request_id: str,
        issued: tuple[str, int] | None,
        found: Found | None,
        task: ServedTask,
        truth: str | float,
        outcome: bool = False,
    ) -> None:
        """Store the label with its scores (or the business outcome), or refuse: unknown, late or duplicate."""
        assert self.store is not None
        now_ms = self.store.now_ms()
        if found is None:
            if issued is not None and now_ms - issued[1] >= self.max_age_ms:
                raise Refusal(410, "late", "request_id: the prediction was purged (older than the age bound)")
            raise Refusal(404, "unknown", "request_id: no prediction with this id is in the store")
        if outcome:
            if now_ms - found.created_at >= self.max_age_ms:
                raise Refusal(410, "late", f"request_id: the prediction is older than {self.max_age_ms / 1000:g} s")
            if not self.store.outcome(request_id, found, float(truth)):
                raise Refusal(409, "duplicate", "request_id: this prediction already has its outcome")
            return
        if found.labelled:
            raise Refusal(409, "duplicate", "request_id: this prediction already has its label")
        if now_ms - found.created_at >= self.max_age_ms:
            raise Refusal(410, "late", f"request_id: the prediction is older than {self.max_age_ms / 1000:g} s")
        if not self.store.label(request_id, found, truth, score(task, found.answer, truth)):
            raise Refusal(409, "duplicate", "request_id: this prediction already has its label")


def score(task: ServedTask, answer: dict[str, Any], truth: str | float) -> Scores:
    """Return what a label says of the stored answer: right or wrong and log loss, or the absolute error."""
    if isinstance(truth, float):
        return Scores(abs_error=abs(float(answer["prediction"]) - truth))
    correct = 1.0 if str(answer["label"]) == truth else 0.0
    probabilities = answer.get("probabilities")
    if task.probabilities and isinstance(probabilities, dict):
        probability = float(probabilities.get(truth, 0.0))
        return Scores(correct=correct, log_loss=-math.log(max(probability, MIN_PROBABILITY)))
    return Scores(correct=correct)


async def _answer(send: Send, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps(payload).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class FeedbackRoute:
    """ASGI middleware answering `POST /feedback` (405 for any other method there); passes the rest on."""

    def __init__(self, app: ASGIApp, judge: Judge, clients: Clients, route: str = "/feedback") -> None:
        self.app = app
        self.judge = judge
        self.clients = clients
        self.route = route
        for name in clients.names:  # every configured client's series exists from the start
            for result in ("accepted", "rate_limited"):
                FEEDBACK_BY_CLIENT.labels(name, result)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the feedback route; pass everything else on."""
        if scope["type"] != "http" or scope["path"] != self.route:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            detail = {"error": "malformed", "detail": f"{scope['method']}: use POST"}
            await _answer(send, 405, detail, [(b"allow", b"POST")])
            return
        headers = dict(scope["headers"])
        verdict = self.clients.identify(headers.get(b"authorization"))
        if self.judge.store is not None and verdict.client is None:  # nothing is read, nothing else counted
            self.judge.count(self.judge.version, "unauthenticated", None)
            challenge = b'Bearer realm="plinth-feedback"'
            if headers.get(b"authorization"):
                challenge += b', error="invalid_token"'
            answer = {"error": "unauthenticated", "detail": verdict.detail}
            await _answer(send, 401, answer, [(b"www-authenticate", challenge)])
            return
        if self.judge.store is not None and verdict.retry_after_s:
            self.judge.count(self.judge.version, "rate_limited", verdict.client)
            answer = {"error": "rate_limited", "detail": verdict.detail}
            await _answer(send, 429, answer, [(b"retry-after", retry_after(verdict.retry_after_s))])
            return
        status, payload = await self._decide(headers, receive, verdict.client)
        await _answer(send, status, payload, [])

    async def _decide(
        self, headers: dict[bytes, bytes], receive: Receive, client: str | None
    ) -> tuple[int, dict[str, Any]]:
        """Check the media type and size, then judge the body in a worker thread (the store blocks)."""
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if self.judge.store is not None and media_type != b"application/json":
            shown = media_type.decode("latin-1") or "none"
            return self._refuse(415, f"Content-Type: must be application/json, got {shown}", client)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_BODY_BYTES:
                return self._refuse(413, f"body: over {MAX_BODY_BYTES} bytes (a request_id and one label)", client)
            if not message.get("more_body", False):
                break
        return await anyio.to_thread.run_sync(self.judge.decide, b"".join(chunks), client)

    def _refuse(self, status: int, detail: str, client: str | None) -> tuple[int, dict[str, Any]]:
        self.judge.count(self.judge.version, "malformed", client)
        return status, {"error": "malformed", "detail": detail}
