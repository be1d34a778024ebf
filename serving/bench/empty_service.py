"""The ceiling: a BentoML endpoint that parses a plinth request and answers a constant, with no model at all.

It takes the served model's own request schema (the same strict pydantic validation of the same body) on
the same route, with the same worker count, and answers one fixed prediction of the binary response shape,
from a plain synchronous API as plinth's is. Whatever the plinth service costs beyond it (guard, batching,
frame, model, metrics, drift window) is plinth's own; what this costs is the framework's floor.
Run: `bentoml serve serving.bench.empty_service:EmptyService` with the plinth model variables set.
"""

from __future__ import annotations

from typing import Any

import bentoml

from serving.model_service import registry, schema
from serving.model_service.settings import Settings

SETTINGS = Settings.from_env()
MODEL = registry.fetch(SETTINGS)
PredictRequest = schema.request_model(MODEL.columns, SETTINGS.max_instances)
PREDICTION = {"label": 1, "probability": 0.5, "probabilities": {"0": 0.5, "1": 0.5}}
ANSWER = {"model_name": MODEL.name, "model_version": MODEL.version, "predictions": [PREDICTION]}


@bentoml.service(workers=SETTINGS.workers, logging={"access": {"enabled": False}})
class EmptyService:
    """Validates the request like the plinth service and answers the same constant every time."""

    @bentoml.api(route="/predict", input_spec=PredictRequest)
    def predict(self, instances: list[Any]) -> dict[str, Any]:
        """Return the constant answer (the instances are validated, then ignored)."""
        return ANSWER
