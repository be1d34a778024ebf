"""The Open Inference Protocol (V2) operations of the published contract (`contract.document` adds them).

Written from the same columns, task and codec as the route (`v2_route.py`, `v2_codec.py`): the inputs' names,
datatypes, shapes (`[n]` or `[n, 1]`) and values (the columns' JSON Schemas, as for /predict), and each output
per task. What no JSON Schema says here: that an input's data holds as many values as its shape, that every
input has as many rows, and that each input's datatype and values are those of its own feature; such a
request is answered 400 naming the input.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from serving.model_service import v2_codec
from serving.model_service.columns import Column
from serving.model_service.predictor import ServedTask

REF = "#/components/schemas/"
_TAG = ["Open Inference Protocol (V2)"]
_STRING = {"type": "string"}
_OBJECT = {"type": "object"}


def _closed(properties: dict[str, Any], required: Sequence[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"{REF}{schema}"}}}}


def input_schema(columns: Sequence[Column], values: Sequence[dict[str, Any]], max_instances: int) -> dict[str, Any]:
    """Return the schema of an input tensor: any feature's name, datatypes and values (`values`: per column).

    One schema for every input rather than one per feature (which one a tensor must match depends on its
    name): a contract test cannot generate thirty-way alternatives. The route checks each input against its
    own column, so a value or datatype of another feature is answered 400 naming the input.
    """
    rows = {"type": "integer", "minimum": 1, "maximum": max_instances}
    shape = {"type": "array", "prefixItems": [rows, {"const": 1}], "minItems": 1, "items": False}
    distinct = [json.loads(text) for text in dict.fromkeys(json.dumps(v, sort_keys=True) for v in values)]
    value = distinct[0] if len(distinct) == 1 else {"anyOf": distinct}
    cell = {"anyOf": [value, {"type": "array", "items": value, "minItems": 1, "maxItems": 1}]}
    datatypes = list(dict.fromkeys(d for c in columns for d in v2_codec.accepted(c)))
    return _closed(
        {
            "name": {"enum": [c.name for c in columns]},
            "datatype": {"enum": datatypes},
            "shape": shape,
            "data": {"type": "array", "items": cell, "minItems": 1, "maxItems": max_instances},
            "parameters": _OBJECT,
        },
        ["name", "datatype", "shape", "data"],
    )


def _output_schema(task: ServedTask) -> dict[str, Any]:
    """Return the schema of one output tensor of an answer, per task."""
    tensors = []
    for tensor in v2_codec.metadata_outputs(task):
        if tensor["name"] == v2_codec.PREDICT:
            datatype = tensor["datatype"]
            if task.kind == "regression" or not task.classes:
                cell: dict[str, Any] = {"type": "number"} if datatype == "FP64" else _STRING
            else:
                cell = {"enum": task.class_names if datatype == "BYTES" else list(task.classes)}
        else:
            cell = {"type": "number", "minimum": 0.0, "maximum": 1.0}
        dimensions = len(tensor["shape"])
        properties = {
            "name": {"const": tensor["name"]},
            "datatype": {"const": tensor["datatype"]},
            "shape": {"type": "array", "items": {"type": "integer"}, "minItems": dimensions, "maxItems": dimensions},
            "data": {"type": "array", "items": cell},
        }
        if "parameters" in tensor:
            properties["parameters"] = {"const": tensor["parameters"]}
        tensors.append(_closed(properties, list(properties)))
    return {"oneOf": tensors}


def schemas(
    name: str, version: str, columns: Sequence[Column], values: Sequence[dict[str, Any]], task: ServedTask, limit: int
) -> dict[str, Any]:
    """Return the V2 component schemas (`values`: each column's value schema, in column order)."""
    metadata_tensor = _closed(
        {
            "name": _STRING,
            "datatype": _STRING,
            "shape": {"type": "array", "items": {"type": "integer"}},
            "parameters": _OBJECT,
        },
        ["name", "datatype", "shape"],
    )
    outputs = v2_codec.output_names(task)
    requested = _closed({"name": {"enum": outputs}, "parameters": _OBJECT}, ["name"])
    return {
        "V2Error": _closed({"error": _STRING}, ["error"]),
        "V2ServerMetadata": _closed(
            {"name": _STRING, "version": _STRING, "extensions": {"type": "array", "items": _STRING}},
            ["name", "version", "extensions"],
        ),
        "V2ServerLive": _closed({"live": {"const": True}}, ["live"]),
        "V2ServerReady": _closed({"ready": {"const": True}}, ["ready"]),
        "V2ModelReady": _closed({"name": {"const": name}, "ready": {"const": True}}, ["name", "ready"]),
        "V2ModelMetadata": _closed(
            {
                "name": {"const": name},
                "versions": {"const": [version]},
                "platform": _STRING,
                "inputs": {"type": "array", "items": metadata_tensor},
                "outputs": {"type": "array", "items": metadata_tensor},
            },
            ["name", "versions", "platform", "inputs", "outputs"],
        ),
        "V2InferRequest": _closed(
            {
                "id": _STRING,
                "model_name": {
                    **_STRING,
                    "description": "Ignored (KServe's client sends it): the path names the model.",
                },
                "model_version": {**_STRING, "description": "Ignored, as model_name."},
                "parameters": _OBJECT,
                "inputs": {
                    "description": "One input per feature, in any order, each with the same rows.",
                    "type": "array",
                    "items": input_schema(columns, values, limit) if columns else False,
                    "minItems": len(columns),
                    "maxItems": len(columns),
                },
                "outputs": {"type": "array", "items": requested},
            },
            ["inputs"],
        ),
        "V2InferResponse": _closed(
            {
                "model_name": {"const": name},
                "model_version": {"const": version},
                "id": _STRING,
                "parameters": _closed(
                    {
                        "request_ids": {
                            **_STRING,
                            "description": "Each row's request_id (for POST /feedback), comma-separated.",
                        }
                    },
                    ["request_ids"],
                ),
                "outputs": {"type": "array", "items": _output_schema(task)},
            },
            ["model_name", "model_version", "parameters", "outputs"],
        ),
    }


def example(instances: Sequence[dict[str, Any]], columns: Sequence[Column]) -> dict[str, Any]:
    """Return an infer request for `instances` (the published /predict example's rows)."""
    rows = len(instances)
    inputs = [
        {
            "name": c.name,
            "datatype": v2_codec.PUBLISHED[c.type],
            "shape": [rows],
            "data": [row[c.name] for row in instances],
        }
        for c in columns
    ]
    return {"id": "example", "inputs": inputs}


def paths(name: str, version: str, example_request: dict[str, Any]) -> dict[str, Any]:
    """Return the V2 path items: server health and metadata, and the model's metadata, ready and infer."""
    errors = {"404": _json("Not a model (or version) this service serves.", "V2Error")}
    not_ready = {"503": _json("Not ready: loading, warming up, or the model was refused.", "V2Error")}
    model = {"name": "name", "in": "path", "required": True, "schema": {"enum": [name]}}
    pinned = {"name": "version", "in": "path", "required": True, "schema": {"enum": [version]}}
    guarded = {
        "400": _json(
            "Malformed, or a wrong datatype, shape, missing input or value: `error` names the input.", "V2Error"
        ),
        "413": _json("Request body over PLINTH_MAX_BODY_BYTES.", "V2Error"),
        "415": _json("Content-Type other than application/json (or none).", "V2Error"),
        "429": _json("Overloaded: retry later.", "V2Error"),
        "500": _json("Unexpected server error (or, in rollout drills only, an injected one).", "V2Error"),
        "503": _json("The model was refused (its files failed verification): never served.", "V2Error"),
        "504": _json("Not answered within PLINTH_TIMEOUT_S.", "V2Error"),
    }

    def get(summary: str, answer: dict[str, Any], params: list[Any], more: dict[str, Any]) -> dict[str, Any]:
        operation = {"summary": summary, "tags": _TAG, "responses": {"200": answer, **more}}
        return {"get": {**operation, "parameters": params} if params else operation}

    def infer(params: list[Any]) -> dict[str, Any]:
        body = {"application/json": {"schema": {"$ref": f"{REF}V2InferRequest"}, "example": example_request}}
        responses = {"200": _json("One output per requested output, rows in request order.", "V2InferResponse")}
        operation = {"summary": "Score rows, columnar (one input per feature)", "tags": _TAG, "parameters": params}
        return {
            "post": {
                **operation,
                "requestBody": {"required": True, "content": body},
                "responses": {**responses, **errors, **guarded},
            }
        }

    metadata = _json("The model's inputs (one per feature) and outputs.", "V2ModelMetadata")
    ready = _json("The model is ready.", "V2ModelReady")
    return {
        "/v2": get("Server metadata", _json("The server.", "V2ServerMetadata"), [], {}),
        "/v2/health/live": get("Server live", _json("Live.", "V2ServerLive"), [], {}),
        "/v2/health/ready": get("Server ready", _json("Ready.", "V2ServerReady"), [], not_ready),
        "/v2/models/{name}": get("Model metadata", metadata, [model], errors),
        "/v2/models/{name}/ready": get("Model ready", ready, [model], {**errors, **not_ready}),
        "/v2/models/{name}/infer": infer([model]),
        "/v2/models/{name}/versions/{version}": get("Model version metadata", metadata, [model, pinned], errors),
        "/v2/models/{name}/versions/{version}/ready": get(
            "Model version ready", ready, [model, pinned], {**errors, **not_ready}
        ),
        "/v2/models/{name}/versions/{version}/infer": infer([model, pinned]),
    }
