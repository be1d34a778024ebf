"""Request and response schemas, generated from the model's feature list.

Every feature is a strict, finite float: JSON integers are accepted (they are numbers), but `false`,
`"1.5"`, `null`, NaN and infinities are rejected with the feature's name, never coerced. Validation runs
in pydantic-core on the raw JSON bytes, so it costs microseconds per row.
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, Any

from bentoml.validators import ContentType
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator

from components.common.profile import FeatureProfile, ReferenceProfile

# A value this many reference spans beyond the training [min, max] is implausible, and large enough to
# overflow a scaler: it is rejected. Merely unusual values pass and are counted as out of range.
PLAUSIBLE_SPANS = 1000.0


def _feature_field(stats: FeatureProfile) -> Any:
    """Return the strict, finite, bounded float type of one feature."""
    span = max(stats.maximum - stats.minimum, abs(stats.mean), 1.0) * PLAUSIBLE_SPANS
    bounds = Field(strict=True, allow_inf_nan=False, ge=stats.minimum - span, le=stats.maximum + span)
    return Annotated[float, bounds]


class Prediction(BaseModel):
    """The answer for one instance."""

    label: int = Field(description="Predicted class, 0 or 1 (probability >= 0.5 means 1).")
    probability: float = Field(description="Predicted probability of class 1.")
    model_name: str
    model_version: str


class PredictResponse(BaseModel):
    """The answer for one request: one prediction per instance, in request order."""

    model_name: str
    model_version: str
    predictions: list[Prediction]


def _wrap_predictions(value: Any) -> Any:
    """Turn the per-request slice of a batch (a list of predictions) into the response object."""
    if isinstance(value, list) and value:
        first = value[0]
        return {
            "model_name": first["model_name"],
            "model_version": first["model_version"],
            "predictions": value,
        }
    return value


# The batched API returns each request's slice of the batch as a list of predictions; BentoML validates
# that list against this annotation, which wraps it into the response object (and documents it). The
# explicit content type spares BentoML from regenerating the JSON schema on every response.
if TYPE_CHECKING:
    PredictResponseBody = list[dict[str, Any]]
else:
    PredictResponseBody = Annotated[
        PredictResponse, BeforeValidator(_wrap_predictions), ContentType("application/json")
    ]


def _columnar_to_records(data: Any, feature_names: list[str]) -> Any:
    """Accept `{"columns": [...], "data": [[...]]}` by turning it into records before field validation.

    Only shape errors are raised here (as ValueError, which pydantic reports as a 400); the values are
    then checked by the same strict per-feature rules as records.
    """
    if not isinstance(data, dict) or ("columns" not in data and "data" not in data):
        return data
    if "instances" in data:
        raise ValueError("give either 'instances' (records) or 'columns' + 'data' (columnar), not both")
    columns, rows = data.get("columns"), data.get("data")
    if not isinstance(columns, list) or not all(isinstance(name, str) for name in columns):
        raise ValueError("'columns' must be a list of feature names")
    if len(set(columns)) != len(columns):
        raise ValueError("'columns' names a feature more than once")
    unknown = [name for name in columns if name not in feature_names]
    missing = [name for name in feature_names if name not in columns]
    if unknown or missing:
        raise ValueError(f"'columns' must list exactly the model's features; unknown: {unknown}, missing: {missing}")
    if not isinstance(rows, list):
        raise ValueError("'data' must be a list of rows (lists of numbers)")
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise ValueError(f"data[{index}] must be a list of {len(columns)} values, one per column")
    extra = sorted(set(data) - {"columns", "data"})
    records: dict[str, Any] = {"instances": [dict(zip(columns, row, strict=True)) for row in rows]}
    records.update({key: data[key] for key in extra})
    return records


def request_model(feature_names: list[str], profile: ReferenceProfile, max_instances: int) -> type[BaseModel]:
    """Build the request model from the signature's features (records, or columnar turned into records).

    Each feature's plausible range comes from the reference profile saved with the model.
    """
    record = create_model(  # type: ignore[call-overload]
        "Instance",
        __config__=ConfigDict(extra="forbid"),
        **{name: (_feature_field(profile.features[name]), ...) for name in feature_names},
    )
    columnar = {
        "columns": {"type": "array", "items": {"type": "string", "enum": feature_names}, "uniqueItems": True},
        "data": {
            "type": "array",
            "minItems": 1,
            "maxItems": max_instances,
            "items": {"type": "array", "items": {"type": "number"}},
        },
    }

    def document_both_forms(schema: dict[str, Any]) -> None:
        schema["properties"].update(columnar)
        schema.pop("required", None)
        schema["oneOf"] = [{"required": ["instances"]}, {"required": ["columns", "data"]}]

    class PredictRequest(BaseModel):
        """Instances to score: `instances` as records, or `columns` + `data` as a table."""

        model_config = ConfigDict(extra="forbid", json_schema_extra=document_both_forms)
        instances: list[record] = Field(min_length=1, max_length=max_instances)  # type: ignore[valid-type]

        @model_validator(mode="before")
        @classmethod
        def accept_columnar(cls, data: Any) -> Any:
            return _columnar_to_records(data, feature_names)

    return PredictRequest


def row_getter(feature_names: list[str]) -> attrgetter[Any]:
    """Return a function that reads one validated instance in training order (a scalar for one feature)."""
    return attrgetter(*feature_names)


def example_input(profile: ReferenceProfile) -> dict[str, list[dict[str, float]]]:
    """Return a request body with one typical instance (the reference means), for the docs and tests."""
    return {"instances": [{name: round(stats.mean, 4) for name, stats in profile.features.items()}]}
