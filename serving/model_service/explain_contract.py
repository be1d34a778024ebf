"""The published contract of `POST /explain`: the same instances as /predict, an answer per task and method.

Written from the same columns and task as /predict's operation (`contract.py` adds it to /docs.json), so a
generated client or schemathesis sees exactly what the route accepts and answers: at most
PLINTH_EXPLAIN_MAX_ROWS instances, one output per class (multiclass), the positive class (binary) or
`prediction` (regression), one contribution per feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.common.explain import LINEAR, LOG_ODDS, LOGIT, PREDICTION, PROBABILITY, SAMPLING, TREE_SHAP, VALUE
from serving.model_service.columns import Column
from serving.model_service.predictor import ServedTask

REF = "#/components/schemas/"
NUMBER = {"type": "number"}
_ERRORS = {
    "413": "Request body over PLINTH_MAX_BODY_BYTES.",
    "415": "Content-Type other than application/json.",
    "422": "The model has no explanations (one served through mlflow.pyfunc, not one of plinth's).",
    "429": "Another explanation is being computed in this worker (one at a time): send it again shortly.",
    "500": "Unexpected server error.",
    "503": "The model version was refused (signature, pickle or loader): nothing is served.",
    "504": "Not answered within PLINTH_TIMEOUT_S.",
}


def output_names(task: ServedTask) -> list[str] | None:
    """Return the names of the explained outputs, None where the classes are not known."""
    if task.kind == "regression":
        return [PREDICTION]
    if not task.classes:
        return None
    return task.class_names[1:] if task.kind == "binary" else task.class_names


def _per_output(names: list[str] | None, value: dict[str, Any]) -> dict[str, Any]:
    if names is None:
        return {"type": "object", "additionalProperties": value}
    return {
        "type": "object",
        "properties": dict.fromkeys(names, value),
        "required": names,
        "additionalProperties": False,
    }


def explain_schemas(columns: Sequence[Column], task: ServedTask, request: dict[str, Any]) -> dict[str, Any]:
    """Return the schemas of /explain: `request` (/predict's, with explain's row bound) and its answer."""
    features = [c.name for c in columns]
    names = output_names(task)
    per_feature = {
        "type": "object",
        "properties": dict.fromkeys(features, NUMBER),
        "required": features,
        "additionalProperties": False,
    }
    explanation = {
        "type": "object",
        "properties": {
            "output": {**_per_output(names, NUMBER), "description": "The model's output, in `units`."},
            "base_value": {**_per_output(names, NUMBER), "description": "The output expected without the row."},
            "contributions": {
                **_per_output(names, per_feature),
                "description": "Per output, each feature's share: base_value + their sum == output.",
            },
        },
        "required": ["output", "base_value", "contributions"],
        "additionalProperties": False,
    }
    message = {"type": "string"}
    response = {
        "type": "object",
        "properties": {
            "model_name": message,
            "model_version": message,
            "method": {"enum": [TREE_SHAP, LINEAR, SAMPLING]},
            "units": {"enum": [LOG_ODDS, LOGIT, PROBABILITY, VALUE]},
            "explanations": {"type": "array", "minItems": 1, "items": {"$ref": f"{REF}Explanation"}},
        },
        "required": ["model_name", "model_version", "method", "units", "explanations"],
        "additionalProperties": False,
    }
    return {"ExplainRequest": request, "Explanation": explanation, "ExplainResponse": response}


def _answer(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"{REF}{schema}"}}}}


def explain_operation(example: dict[str, Any]) -> dict[str, Any]:
    """Return the `POST /explain` operation (`example`: a valid request body, /predict's)."""
    return {
        "summary": "Explain predictions: each feature's contribution to the model's output",
        "operationId": "explain",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"{REF}ExplainRequest"}, "example": example}},
        },
        "responses": {
            "200": _answer("One explanation per instance, in request order.", "ExplainResponse"),
            "400": _answer("Invalid JSON or instances; `detail` names each offending field.", "ValidationError"),
            **{status: _answer(text, "Error") for status, text in _ERRORS.items()},
        },
    }
