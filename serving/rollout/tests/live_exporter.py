"""A stand-in model-service process for live-quality tests: its own registry, the service's metric names.

Each instance is one process: `plinth_model_info` names the version it serves, and the ground-truth
Summaries take whatever version a label belongs to (the logged prediction's), as `monitor.py` exports them.
Every version's children exist from the start at zero, as they would after the service's first label.
"""

from __future__ import annotations

from collections.abc import Iterable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, Summary, generate_latest, start_http_server

MODEL = "live-model"


class LiveExporter:
    """One process's metrics: serving `version` of a `task` model, holding labels of `versions`."""

    def __init__(self, version: str, task: str, versions: Iterable[str]) -> None:
        self.registry = CollectorRegistry()
        info = Gauge(
            "plinth_model_info",
            "Served model.",
            ["model_name", "model_version", "task", "drift"],
            registry=self.registry,
        )
        info.labels(MODEL, version, task, "off").set(1)
        labels = ["model_name", "model_version"]
        self.correct = Summary("plinth_live_correct", "Right (1) or wrong (0).", labels, registry=self.registry)
        self.error = Summary("plinth_live_absolute_error", "Absolute error.", labels, registry=self.registry)
        for known in versions:
            (self.correct if task != "regression" else self.error).labels(MODEL, known)
        self.server: WSGIServer | None = None

    def classified(self, version: str, right: int, wrong: int) -> None:
        """Observe `right` correct and `wrong` wrong labelled predictions of `version`."""
        for outcome in [1] * right + [0] * wrong:
            self.correct.labels(MODEL, version).observe(outcome)

    def regressed(self, version: str, errors: Iterable[float]) -> None:
        """Observe one labelled regression prediction of `version` per absolute error."""
        for error in errors:
            self.error.labels(MODEL, version).observe(error)

    def text(self) -> str:
        """Return the /metrics page."""
        return generate_latest(self.registry).decode()

    def serve(self) -> str:
        """Serve /metrics on 127.0.0.1 and return the base URL."""
        server, _ = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.server = server
        return f"http://127.0.0.1:{server.server_port}"

    def close(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
