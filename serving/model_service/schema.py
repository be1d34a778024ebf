"""Request and response models, generated from the model's columns and task.

Each column takes exactly its signature type: `double`/`float` a finite JSON number (integers are numbers),
`long`/`integer` a JSON integer (`3` or `3.0`, as JSON Schema counts them), `boolean` true/false,
`string` a string; `null` only where the column is optional. Nothing is coerced: `"1.5"` for a number,
`1` for a string or `true` for a number is refused with the column's name. Validation runs in pydantic-core
on the raw JSON bytes, so it costs microseconds per row. What is published at /docs.json is written from
the same columns (`contract.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from bentoml.validators import ContentType
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator, with_config
from typing_extensions import TypedDict

from components.common.task import predicted_index
from serving.model_service.columns import INTEGER_TYPES, Column
from serving.model_service.predictor import ServedTask


def _integral(value: Any) -> Any:
    """Read a JSON number without a fractional part (`3.0`) as the integer it is, as JSON Schema does."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def field_type(column: Column) -> Any:
    """Return the strict type of one column: its JSON type, its range, and `None` only when optional."""
    low, high = column.bounds
    strict: Any
    if column.is_number:
        strict = Annotated[float, Field(strict=True, ge=low, le=high, allow_inf_nan=False)]
    elif column.type in INTEGER_TYPES:
        strict = Annotated[int, BeforeValidator(_integral), Field(strict=True, ge=low, le=high)]
    else:
        base = bool if column.type == "boolean" else str
        strict = Annotated[base, Field(strict=True)]
    return strict | None if column.optional else strict


def instance_type(columns: Sequence[Column]) -> type:
    """Return one instance's type: a closed object with exactly the model's columns (any key spelling)."""
    fields = {c.name: field_type(c) for c in columns}
    return with_config(ConfigDict(extra="forbid"))(TypedDict("Instance", fields))  # type: ignore[operator]


def columnar_to_records(data: Any, names: list[str]) -> Any:
    """Accept `{"columns": [...], "data": [[...]]}` by turning it into records before field validation.

    The columns must be the model's, in signature order: that is what the published contract can say
    exactly (row i's value j is then column j's type). Only shape errors are raised here (ValueError,
    answered 400); the values are checked by the same per-column rules as records.
    """
    if not isinstance(data, dict) or ("columns" not in data and "data" not in data):
        return data
    if "instances" in data:
        raise ValueError("give either 'instances' (records) or 'columns' + 'data' (columnar), not both")
    columns, rows = data.get("columns"), data.get("data")
    if not isinstance(columns, list) or not all(isinstance(name, str) for name in columns):
        raise ValueError("'columns' must be a list of feature names")
    if columns != names:
        unknown = [name for name in columns if name not in names]
        missing = [name for name in names if name not in columns]
        if unknown or missing:
            raise ValueError(
                f"'columns' must list exactly the model's features; unknown: {unknown}, missing: {missing}"
            )
        raise ValueError(f"'columns' must list the model's features in signature order: {names}")
    if not isinstance(rows, list):
        raise ValueError("'data' must be a list of rows, one list of values per instance")
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            raise ValueError(f"data[{index}] must be a list of {len(names)} values, one per column")
    records: dict[str, Any] = {"instances": [dict(zip(names, row, strict=True)) for row in rows]}
    records.update({key: value for key, value in data.items() if key not in ("columns", "data")})
    return records


def request_model(columns: Sequence[Column], max_instances: int) -> type[BaseModel]:
    """Build the request model: `instances` as records, or `columns` + `data` turned into records first."""
    instance = instance_type(columns)
    names = [c.name for c in columns]

    class PredictRequest(BaseModel):
        """Instances to score: `instances` as records, or `columns` + `data` as a table."""

        model_config = ConfigDict(extra="forbid")
        instances: list[instance] = Field(min_length=1, max_length=max_instances)  # type: ignore[valid-type]

        @model_validator(mode="before")
        @classmethod
        def accept_columnar(cls, data: Any) -> Any:
            return columnar_to_records(data, names)

    return PredictRequest


def response_type(task: ServedTask) -> Any:
    """Return the API's return annotation: the per-request slice of a batch, wrapped into the response.

    The batched API returns each request's predictions as a list; BentoML validates that list against this
    annotation, which wraps it into `{model_name, model_version, predictions}`. The explicit content type
    spares BentoML from regenerating the JSON schema on every response.
    """
    fields: dict[str, Any] = {}
    if task.kind == "regression":
        fields["prediction"] = (float, ...)
    else:
        fields["label"] = (Any, ...)
        if task.probabilities and task.kind == "binary":
            fields["probability"] = (float, ...)
        if task.probabilities:
            fields["probabilities"] = (dict[str, float], ...)
    fields.update(model_name=(str, ...), model_version=(str, ...), request_id=(str, ...))
    prediction = create_model("Prediction", **fields)
    response = create_model(
        "PredictResponse",
        model_name=(str, ...),
        model_version=(str, ...),
        predictions=(list[prediction], ...),  # type: ignore[valid-type]
    )
    return Annotated[response, BeforeValidator(_wrap_predictions), ContentType("application/json")]


def _wrap_predictions(value: Any) -> Any:
    """Turn the per-request slice of a batch (a list of predictions) into the response object."""
    if isinstance(value, list) and value:
        first = value[0]
        return {"model_name": first["model_name"], "model_version": first["model_version"], "predictions": value}
    return value


def answers(task: ServedTask, output: np.ndarray, model_name: str, model_version: str) -> list[dict[str, Any]]:
    """Return one prediction per row of the model's output, in the task's response shape.

    Binary: the label is the positive class when its probability is at least the model's threshold (0.5 for a
    model without one), multiclass: the most probable class, both by `task.predicted_index`, the one rule that
    the predicted-class metric, batch scoring and evaluation apply too. Regression: the value. A classifier
    without probabilities: its label. Each answer's `request_id` is added afterwards, by
    `recorder.Recorder.stamp`, which logs it.
    """
    ident = {"model_name": model_name, "model_version": model_version}
    if task.kind == "regression":
        return [{"prediction": value, **ident} for value in output.tolist()]
    if not task.probabilities:
        return [{"label": label, **ident} for label in output.tolist()]
    names, classes = task.class_names, task.classes
    chosen = predicted_index(output, task.kind, task.threshold).tolist()
    if task.kind == "binary":
        return [
            {
                "label": classes[index],
                "probability": row[1],
                "probabilities": dict(zip(names, row, strict=True)),
                **ident,
            }
            for index, row in zip(chosen, output.tolist(), strict=True)
        ]
    return [
        {"label": classes[index], "probabilities": dict(zip(names, row, strict=True)), **ident}
        for index, row in zip(chosen, output.tolist(), strict=True)
    ]
