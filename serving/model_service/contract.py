"""The published API contract at /docs.json: what /predict, /feedback and /v2 accept and answer, errors included.

BentoML publishes a generic spec (OpenAPI 3.0, a request schema from pydantic, a string `detail` in its
error schema). A client generated from it, or a contract test such as schemathesis, would then disagree
with the service. So the /predict operation is written here from the same columns and task the
validation uses, and published as OpenAPI 3.1: its JSON Schema 2020-12 can say `prefixItems`, which is
what the columnar form needs (row value j has column j's type; OpenAPI 3.0 has no per-position array
schema). The columnar form therefore names the model's columns in signature order, and the service
accepts exactly that. Error bodies are the guard's (`{"error"}`) and BentoML's validation answer
(`{"error", "detail": [...]}`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from serving.model_service import explain_contract, v2_contract
from serving.model_service.columns import Column
from serving.model_service.feedback_route import ERRORS
from serving.model_service.guard import ASGIApp, Receive, Scope, Send
from serving.model_service.predictor import ServedTask

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/"
_JSON_TYPES = {"double": "number", "float": "number", "long": "integer", "integer": "integer"}
_PROBABILITY = {"type": "number", "minimum": 0.0, "maximum": 1.0}
_ERROR_STATUSES = {
    "413": "Request body over PLINTH_MAX_BODY_BYTES.",
    "415": "Content-Type other than application/json.",
    "429": "Overloaded: more requests in flight than PLINTH_MAX_CONCURRENCY, or the batcher is behind.",
    "500": "Unexpected server error (or, in rollout drills only, an injected one).",
    "504": "Not answered within PLINTH_TIMEOUT_S.",
}


def nullable(column: Column) -> str:
    """Return why a column may or may not be null, for the published contract (and a person reading it)."""
    if not column.optional:
        return "Required, not null: the model's signature marks it required (the model does not fill it)."
    if column.stats is not None:
        return "May be null: a plinth model fills a missing value itself (imputed, or a category of its own)."
    return "May be null: the model's signature marks it optional."


def column_schema(column: Column) -> dict[str, Any]:
    """Return the JSON Schema of one column's values (the same rules as `schema.field_type`)."""
    kind = _JSON_TYPES.get(column.type, column.type)
    schema: dict[str, Any] = {"type": [kind, "null"] if column.optional else kind, "description": nullable(column)}
    low, high = column.bounds
    if low is not None:
        schema.update(minimum=low, maximum=high)
    return schema


def request_schemas(columns: Sequence[Column], max_instances: int) -> dict[str, Any]:
    """Return the request body schema (records or columnar) and the instance schema."""
    names = [c.name for c in columns]
    instance = {
        "type": "object",
        "properties": {c.name: column_schema(c) for c in columns},
        "required": names,
        "additionalProperties": False,
    }
    rows = {"type": "array", "minItems": 1, "maxItems": max_instances}
    records = {
        "type": "object",
        "properties": {"instances": {**rows, "items": {"$ref": f"{REF}Instance"}}},
        "required": ["instances"],
        "additionalProperties": False,
    }
    row = {"type": "array", "prefixItems": [column_schema(c) for c in columns], "items": False}
    columnar = {
        "type": "object",
        "properties": {
            "columns": {"description": "The model's features, in signature order.", "const": names},
            "data": {**rows, "items": {**row, "minItems": len(columns)}},
        },
        "required": ["columns", "data"],
        "additionalProperties": False,
    }
    request = {"description": "Records, or a table with the model's columns in order.", "oneOf": [records, columnar]}
    return {"PredictRequest": request, "Instance": instance}


def _label_schema(task: ServedTask) -> dict[str, Any]:
    """Return the schema of a class label: one of the classes when they are known."""
    return {"enum": list(task.classes)} if task.classes else {"type": ["string", "integer", "number", "boolean"]}


def prediction_schema(task: ServedTask) -> dict[str, Any]:
    """Return the schema of one prediction for the served task."""
    properties: dict[str, Any] = {}
    if task.kind == "regression":
        properties["prediction"] = {"type": "number"}
    else:
        properties["label"] = _label_schema(task)
        if task.probabilities and task.kind == "binary":
            cut = 0.5 if task.threshold is None else task.threshold  # task.predicted_index's rule
            properties["label"]["description"] = (
                f"{task.classes[1]} when probability >= {cut:.6g}, else {task.classes[0]}."
            )
            properties["probability"] = {**_PROBABILITY, "description": f"P(class {task.classes[1]})."}
        if task.probabilities:
            properties["probabilities"] = {
                "type": "object",
                "properties": {name: _PROBABILITY for name in task.class_names},
                "required": task.class_names,
                "additionalProperties": False,
            }
    properties.update(
        model_name={"type": "string"},
        model_version={"type": "string"},
        request_id={"type": "string", "description": "Give it to POST /feedback with the true label or value."},
    )
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _schemas(columns: Sequence[Column], task: ServedTask, max_instances: int) -> dict[str, Any]:
    """Return every component schema the /predict operation refers to."""
    detail = {
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
            "msg": {"type": "string"},
            "url": {"type": "string"},
        },
        "required": ["type", "loc", "msg"],
        "additionalProperties": False,
    }
    message = {"type": "string"}
    return {
        **request_schemas(columns, max_instances),
        "Prediction": prediction_schema(task),
        "PredictResponse": {
            "type": "object",
            "properties": {
                "model_name": message,
                "model_version": message,
                "predictions": {"type": "array", "minItems": 1, "items": {"$ref": f"{REF}Prediction"}},
            },
            "required": ["model_name", "model_version", "predictions"],
            "additionalProperties": False,
        },
        "ValidationError": {
            "type": "object",
            "properties": {"error": message, "detail": {"type": "array", "items": detail}},
            "required": ["error"],
            "additionalProperties": False,
        },
        "Error": {
            "type": "object",
            "properties": {"error": message},
            "required": ["error"],
            "additionalProperties": False,
        },
    }


def feedback_schemas(task: ServedTask) -> dict[str, Any]:
    """Return the schemas of `POST /feedback`: the label (or value) for one request id, and its answers."""
    label = _label_schema(task) if task.classes else {**_label_schema(task), "maxLength": 256}  # MAX_LABEL_CHARS
    truth = ("value", {"type": "number"}) if task.kind == "regression" else ("label", label)
    identifier = {"type": "string", "minLength": 1, "description": "The prediction's request_id."}
    message = {"type": "string"}
    return {
        "FeedbackRequest": {
            "type": "object",
            "properties": {"request_id": identifier, truth[0]: truth[1]},
            "required": ["request_id", truth[0]],
            "additionalProperties": False,
        },
        "FeedbackAccepted": {
            "type": "object",
            "properties": {"request_id": message, "result": {"const": "accepted"}, "model_version": message},
            "required": ["request_id", "result", "model_version"],
            "additionalProperties": False,
        },
        "FeedbackError": {
            "type": "object",
            "properties": {"error": {"enum": list(ERRORS)}, "detail": message},
            "required": ["error", "detail"],
            "additionalProperties": False,
        },
    }


_FEEDBACK_STATUSES = {
    "400": "Malformed (`malformed`): `detail` names the field.",
    "404": "No prediction with this id is in the store (`unknown`), or feedback is off (`disabled`).",
    "409": "The prediction already has its label (`duplicate`).",
    "410": "The prediction is older than PLINTH_FEEDBACK_MAX_AGE, or was purged for it (`late`).",
    "401": "No `Authorization: Bearer <token>` of a labelling client (`unauthenticated`); nothing was read.",
    "413": "Body over 4 KiB (`malformed`).",
    "415": "Content-Type other than application/json (`malformed`).",
    "429": "The client is over its rate (`rate_limited`): send it again after `Retry-After` seconds.",
    "503": "The prediction store cannot be reached; the label was not stored, send it again (`store_unavailable`).",
}


def feedback_operation() -> dict[str, Any]:
    """Return the `POST /feedback` operation (its schemas come from `feedback_schemas`)."""
    return {
        "summary": "Label a stored prediction with its ground truth",
        "operationId": "feedback",
        "security": [{"labellingClient": []}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"{REF}FeedbackRequest"}}},
        },
        "responses": {
            "200": _answer(
                "Accepted: the label is stored; live quality counts it for its version.", "FeedbackAccepted"
            ),
            **{status: _answer(text, "FeedbackError") for status, text in _FEEDBACK_STATUSES.items()},
        },
    }


def _answer(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"{REF}{schema}"}}}}


def document(
    generic: dict[str, Any],
    columns: Sequence[Column],
    task: ServedTask,
    max_instances: int,
    example: dict[str, Any],
    model: tuple[str, str] | None = None,
    explain_rows: int = 0,
) -> bytes:
    """Return BentoML's `generic` spec with the exact /predict operation and schemas, as JSON bytes.

    `example` (a valid request body) is published with the request, for the docs UI and contract tests.
    `model` (name, version): the Open Inference Protocol (V2) operations are published too (`v2_contract.py`).
    `explain_rows` (PLINTH_EXPLAIN_MAX_ROWS; 0 when explanations are off): POST /explain too (`explain_contract.py`).
    """
    spec = {**generic, "openapi": OPENAPI_VERSION}
    spec["components"] = {"schemas": {**_schemas(columns, task, max_instances), **feedback_schemas(task)}}
    spec["components"]["securitySchemes"] = {"labellingClient": {"type": "http", "scheme": "bearer"}}
    feedback = feedback_operation()
    feedback["responses"]["429"]["headers"] = {"Retry-After": {"schema": {"type": "string"}, "required": True}}
    operation = dict(spec["paths"]["/predict"]["post"])
    responses = {
        "200": _answer("One prediction per instance, in request order.", "PredictResponse"),
        "400": _answer("Invalid JSON or instances; `detail` names each offending field.", "ValidationError"),
        **{status: _answer(text, "Error") for status, text in _ERROR_STATUSES.items()},
    }
    responses["429"]["headers"] = {"Retry-After": {"schema": {"type": "string"}, "required": False}}
    operation.update(
        requestBody={
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"{REF}PredictRequest"}, "example": example}},
        },
        responses=responses,
    )
    spec["paths"] = {**spec["paths"], "/predict": {"post": operation}, "/feedback": {"post": feedback}}
    if model is not None:
        name, version = model
        values = [column_schema(c) for c in columns]
        spec["components"]["schemas"].update(v2_contract.schemas(name, version, columns, values, task, max_instances))
        spec["paths"].update(v2_contract.paths(name, version, v2_contract.example(example["instances"], columns)))
    if explain_rows:
        request = request_schemas(columns, explain_rows)["PredictRequest"]
        spec["components"]["schemas"].update(explain_contract.explain_schemas(columns, task, request))
        spec["paths"]["/explain"] = {"post": explain_contract.explain_operation(example)}
    return json.dumps(spec).encode()


class PublishedContract:
    """ASGI middleware answering GET /docs.json with the exact contract (built once, on first request)."""

    def __init__(self, app: ASGIApp, build: Callable[[], bytes], route: str = "/docs.json") -> None:
        self.app = app
        self.build = build
        self.route = route
        self.body: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the contract route; pass everything else on."""
        if scope["type"] != "http" or scope["path"] != self.route or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        if self.body is None:
            self.body = self.build()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})
