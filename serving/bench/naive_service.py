"""The naive baseline: a BentoML service that wraps `mlflow.pyfunc` with adaptive batching.

This is what a first BentoML port of `mlflow models serve` looks like: records in, a pandas DataFrame,
`pyfunc.predict` (schema enforcement and all), labels out. It exists only to be benchmarked against.
Run: `bentoml serve serving.bench.naive_service:NaivePyfuncService` with the plinth model variables set.
"""

from __future__ import annotations

import bentoml
import pandas as pd

from serving.model_service.settings import Settings


@bentoml.service(workers=Settings.from_env().workers, logging={"access": {"enabled": False}})
class NaivePyfuncService:
    """Loads the configured registered model as a pyfunc and predicts DataFrames built from records."""

    def __init__(self) -> None:
        import mlflow

        settings = Settings.from_env()
        mlflow.set_tracking_uri(settings.tracking_uri)
        mlflow.set_registry_uri(settings.tracking_uri)
        self.model = mlflow.pyfunc.load_model(settings.model_selector)

    @bentoml.api(batchable=True, max_batch_size=256, max_latency_ms=500)
    def predict(self, instances: list[dict[str, float]]) -> list[float]:
        """Predict one label per record."""
        return [float(label) for label in self.model.predict(pd.DataFrame(instances))]
