"""Local model services: one `bentoml serve` process per track, configured only through environment.

The chaos knobs turn a healthy model into an erroring or slow canary for drills and tests; the service
itself implements them, the rollout only sets the variables.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from serving.embedded.processes import ManagedProcess, bin_path, free_port

SERVICE_TARGET = "serving.model_service.service:ModelService"
PREDICTION_STORE_ENV = "PLINTH_PREDICTION_STORE"


def prediction_store_of(log_dir: Path) -> str:
    """Return the store the local stack's processes share: PLINTH_PREDICTION_STORE, else a file beside its logs."""
    return os.environ.get(PREDICTION_STORE_ENV) or str(log_dir.parent / "predictions.sqlite")


@dataclass(frozen=True)
class Chaos:
    """Faults a drill injects into a service."""

    error_rate: float = 0.0
    latency_ms: float = 0.0

    def env(self) -> dict[str, str]:
        """Return the service's chaos variables (empty when healthy)."""
        env = {}
        if self.error_rate:
            env["PLINTH_CHAOS_ERROR_RATE"] = str(self.error_rate)
        if self.latency_ms:
            env["PLINTH_CHAOS_LATENCY_MS"] = str(self.latency_ms)
        return env


class ModelProcess(ManagedProcess):
    """A `bentoml serve` process serving one model version on 127.0.0.1."""

    def __init__(
        self,
        track: str,
        model_name: str,
        version: str,
        tracking_uri: str,
        log_dir: Path,
        chaos: Chaos | None = None,
        port: int | None = None,
    ) -> None:
        self.track = track
        self.version = version
        self.port = port or free_port()
        env = {
            "PLINTH_MODEL_NAME": model_name,
            "PLINTH_MODEL_VERSION": version,
            "MLFLOW_TRACKING_URI": tracking_uri,
            # Explicit, never inherited: MLflow's set_tracking_uri exports both variables to this process.
            "MLFLOW_REGISTRY_URI": tracking_uri,
            "PLINTH_WORKERS": "1",
            "BENTOML_DO_NOT_TRACK": "True",
            # Own BentoML home per process: `bentoml serve` keeps its Prometheus multiprocess files in
            # $BENTOML_HOME and wipes them at start, so two services sharing it would mix (and erase) each
            # other's metrics.
            "BENTOML_HOME": str(log_dir / f"bentoml-{track}-{self.port}"),
            # One prediction store for both tracks (and the live-quality exporter): a label joins whichever
            # process it lands on. A store set for this shell (`postgresql://…`) is kept.
            PREDICTION_STORE_ENV: prediction_store_of(log_dir),
            **(chaos or Chaos()).env(),
        }
        argv = [bin_path("bentoml"), "serve", SERVICE_TARGET, "--host", "127.0.0.1", "--port", str(self.port)]
        super().__init__(
            f"{track} service (v{version}, :{self.port})",
            argv,
            log_dir / f"{track}-v{version}-{self.port}.log",
            env,
            f"{self.url}/readyz",
        )

    @property
    def url(self) -> str:
        """Return the service's base URL."""
        return f"http://127.0.0.1:{self.port}"


class LiveQualityProcess(ManagedProcess):
    """The one live-quality exporter: labels in the shared store become `plinth_live_*` metrics on /metrics."""

    def __init__(self, log_dir: Path, port: int | None = None, interval_s: float = 1.0) -> None:
        self.port = port or free_port()
        argv = [sys.executable, "-m", "serving.model_service.live_quality", "--port", str(self.port)]
        super().__init__(
            f"live-quality exporter (:{self.port})",
            [*argv, "--interval", f"{interval_s:g}"],
            log_dir / f"live-quality-{self.port}.log",
            {PREDICTION_STORE_ENV: prediction_store_of(log_dir)},
            f"{self.url}/metrics",
        )

    @property
    def url(self) -> str:
        """Return the exporter's base URL."""
        return f"http://127.0.0.1:{self.port}"
