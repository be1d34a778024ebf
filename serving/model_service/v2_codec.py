"""The Open Inference Protocol (V2) in plinth's terms: input tensors to /predict instances, answers to outputs.

A V2 request is columnar: one named input per feature, `shape` `[n]` or `[n, 1]`, `data` its n values (flat or
nested, row-major). It is turned into the same records `/predict` takes, and those go through the same request
model (`schema.request_model`), so a value `/predict` refuses is refused here too (the error names the input).
Only what the protocol adds is checked here: names, datatypes, shapes, and that every input has n rows.

Outputs follow MLServer's scikit-learn runtime: `predict` (the class label, or the value of a regression) and,
for a classifier with probabilities, `predict_proba` (`[n, classes]`, FP64, columns in the order of its
`classes` parameter). Each row's `request_id` (for `POST /feedback`) is in the response's `parameters`, as
`request_ids`: comma-separated in row order (a protocol parameter is a string, number or boolean).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from serving.model_service.columns import INTEGER_TYPES, NUMBER_TYPES, Column
from serving.model_service.predictor import ServedTask

INTEGERS = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
FLOATS = ("FP16", "FP32", "FP64")
# The datatype each column type is published with (metadata), and every datatype it accepts.
PUBLISHED = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
}
REQUEST_FIELDS = ("id", "model_name", "model_version", "parameters", "inputs", "outputs")
INPUT_FIELDS = ("name", "datatype", "shape", "data", "parameters")
PREDICT, PROBABILITIES = "predict", "predict_proba"


def accepted(column: Column) -> tuple[str, ...]:
    """Return the datatypes a column takes: any number for a float column, integers for an integer column."""
    if column.type in NUMBER_TYPES:
        return (*FLOATS, *INTEGERS)
    if column.type in INTEGER_TYPES:
        return INTEGERS
    return (PUBLISHED[column.type],)


class V2Error(Exception):
    """A request the protocol refuses: its status, a message naming the input, and the rejection reason."""

    def __init__(self, status: int, message: str, reason: str = "invalid_value") -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason


@dataclass
class Inference:
    """A decoded infer request: its rows as /predict instances, its id and the outputs it asks for."""

    instances: list[dict[str, Any]]
    request_id: str | None = None
    outputs: list[str] = field(default_factory=list)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _object(value: Any, where: str, fields: Sequence[str]) -> dict[str, Any]:
    """Return `value` if it is an object with only `fields`, else refuse naming `where`."""
    if not isinstance(value, dict):
        raise V2Error(400, f"{where}: must be an object", "invalid_shape")
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise V2Error(400, f"{where}: unknown field(s) {', '.join(unknown)}", "invalid_shape")
    if not isinstance(value.get("parameters", {}), dict):
        raise V2Error(400, f"{where}: parameters must be an object", "invalid_shape")
    return value


def _flat(data: Any, where: str) -> list[Any]:
    """Return an input's values: `data` is a list of values, or (row-major, shape [n, 1]) of one-value lists."""
    if not isinstance(data, list):
        raise V2Error(400, f"{where}: data must be a list of values", "invalid_shape")
    values = []
    for item in data:
        if isinstance(item, list):
            if len(item) != 1:
                raise V2Error(400, f"{where}: a row of data must hold one value, not {len(item)}", "invalid_shape")
            item = item[0]
        values.append(item)
    return values


def _rows(spec: dict[str, Any], column: Column, max_instances: int) -> list[Any]:
    """Check one input's datatype, shape and data against its column; return its values in row order."""
    where = f"input '{column.name}'"
    if spec.get("datatype") not in accepted(column):
        wanted = PUBLISHED[column.type]
        raise V2Error(400, f"{where}: datatype {spec.get('datatype')!r}, expected {wanted} (a {column.type} column)")
    shape = spec.get("shape")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(isinstance(size, int) and not isinstance(size, bool) for size in shape)
        or shape[0] < 1
        or shape[1:] not in ([], [1])
    ):
        raise V2Error(400, f"{where}: shape {shape!r}, expected [n] or [n, 1] with n >= 1", "invalid_shape")
    if shape[0] > max_instances:
        raise V2Error(400, f"{where}: {shape[0]} rows, at most {max_instances} per request", "batch_size")
    if "data" not in spec:
        raise V2Error(400, f"{where}: no data (binary tensor data is not supported: send JSON data)", "invalid_shape")
    values = _flat(spec["data"], where)
    if len(values) != shape[0]:
        raise V2Error(400, f"{where}: shape {shape} holds {shape[0]} values, data has {len(values)}", "invalid_shape")
    return values


def decode(body: bytes, columns: Sequence[Column], max_instances: int, outputs: Sequence[str]) -> Inference:
    """Return the /predict instances of an infer request body, or raise V2Error naming what is wrong."""
    try:
        request = json.loads(body, parse_constant=_refuse_constant)
    except ValueError as error:
        raise V2Error(400, f"body: not valid JSON ({error})", "invalid_json") from None
    request = _object(request, "body", REQUEST_FIELDS)
    for key in ("id", "model_name", "model_version"):  # KServe's client sends the names too (the path decides)
        if key in request and not isinstance(request[key], str):
            raise V2Error(400, f"{key}: must be a string", "invalid_shape")
    request_id = request.get("id")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise V2Error(400, "inputs: must be a non-empty list, one input per feature", "invalid_shape")
    by_name = {c.name: c for c in columns}
    values: dict[str, list[Any]] = {}
    for index, spec in enumerate(inputs):
        spec = _object(spec, f"inputs[{index}]", INPUT_FIELDS)
        name = spec.get("name")
        if not isinstance(name, str) or name not in by_name:
            raise V2Error(400, f"input {name!r}: not a feature of this model", "unknown_feature")
        if name in values:
            raise V2Error(400, f"input '{name}': given twice", "invalid_shape")
        values[name] = _rows(spec, by_name[name], max_instances)
    missing = [c.name for c in columns if c.name not in values]
    if missing:
        raise V2Error(400, f"input(s) {', '.join(map(repr, missing))}: missing", "missing_feature")
    first = columns[0].name
    for name, rows in values.items():
        if len(rows) != len(values[first]):
            detail = f"{len(rows)} rows, input '{first}' has {len(values[first])}"
            raise V2Error(400, f"input '{name}': {detail}; every input has the same rows", "invalid_shape")
    asked = _requested(request["outputs"], outputs) if "outputs" in request else list(outputs)
    names = list(values)
    instances = [dict(zip(names, row, strict=True)) for row in zip(*values.values(), strict=True)]
    return Inference(instances, request_id, asked)


def _requested(given: Any, outputs: Sequence[str]) -> list[str]:
    """Return the output names a request asks for, or refuse an unknown one."""
    if not isinstance(given, list):
        raise V2Error(400, "outputs: must be a list of {name}", "invalid_shape")
    names = []
    for index, spec in enumerate(given):
        name = _object(spec, f"outputs[{index}]", ("name", "parameters")).get("name")
        if not isinstance(name, str) or name not in outputs:
            raise V2Error(400, f"output {name!r}: not an output of this model; it has {', '.join(outputs)}")
        names.append(str(name))
    return names


def error_from_predict(body: bytes) -> str:
    """Return the message of a /predict validation answer, each error naming its input and row."""
    try:
        details = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        details = None
    if not isinstance(details, list) or not details:
        return body.decode("utf-8", "replace")
    messages = []
    for detail in details[:5]:
        loc = detail.get("loc", [])
        if len(loc) >= 3 and loc[0] == "instances":
            messages.append(f"input '{loc[2]}' row {loc[1]}: {detail.get('msg')}")
        else:
            messages.append(f"{'.'.join(map(str, loc)) or 'body'}: {detail.get('msg')}")
    return "; ".join(messages)


def label_datatype(task: ServedTask) -> str:
    """Return the datatype of the `predict` output: the value, or the classes' common type (text otherwise)."""
    if task.kind == "regression":
        return "FP64"
    classes = task.classes
    if classes and all(isinstance(label, bool) for label in classes):
        return "BOOL"
    if classes and all(isinstance(label, int) and not isinstance(label, bool) for label in classes):
        return "INT64"
    if classes and all(isinstance(label, int | float) and not isinstance(label, bool) for label in classes):
        return "FP64"
    return "BYTES"


def output_names(task: ServedTask) -> list[str]:
    """Return the outputs the served task answers."""
    return [PREDICT, PROBABILITIES] if task.probabilities and task.kind != "regression" else [PREDICT]


def metadata_outputs(task: ServedTask) -> list[dict[str, Any]]:
    """Return the outputs as metadata tensors (`-1`: the request's rows)."""
    tensors: list[dict[str, Any]] = [{"name": PREDICT, "datatype": label_datatype(task), "shape": [-1]}]
    if PROBABILITIES in output_names(task):
        tensors.append(
            {
                "name": PROBABILITIES,
                "datatype": "FP64",
                "shape": [-1, len(task.classes)],
                "parameters": {"classes": json.dumps(task.class_names)},
            }
        )
    return tensors


def encode(
    task: ServedTask, predictions: list[dict[str, Any]], asked: Sequence[str], request_id: str | None
) -> dict[str, Any]:
    """Return the V2 response fields (outputs, id, request ids) for one request's /predict answers."""
    rows = len(predictions)
    outputs = []
    for tensor in metadata_outputs(task):
        if tensor["name"] not in asked:
            continue
        if tensor["name"] == PREDICT:
            key = "prediction" if task.kind == "regression" else "label"
            data = [answer[key] for answer in predictions]
            data = [str(value) for value in data] if tensor["datatype"] == "BYTES" else data
            outputs.append({**tensor, "shape": [rows], "data": data})
        else:
            names = task.class_names
            data = [answer["probabilities"][name] for answer in predictions for name in names]
            outputs.append({**tensor, "shape": [rows, len(names)], "data": data})
    answer: dict[str, Any] = {
        "outputs": outputs,
        "parameters": {"request_ids": ",".join(p["request_id"] for p in predictions)},
    }
    if request_id is not None:
        answer["id"] = request_id
    return answer
