"""`POST /explain`: per-feature contributions of the served model for a few rows, metered apart from /predict.

The contributions are `components/common/explain.py`'s (TreeSHAP for XGBoost, exact for the linear model,
sampling Shapley for the MLP), computed on the same typed frame /predict scores, from the same loaded and
verified model. An explanation costs far more than a prediction (the MLP's is thousands of model rows per
row), so it never shares /predict's path: its own route and request model (at most PLINTH_EXPLAIN_MAX_ROWS
rows), no batching with predictions, one explanation at a time per worker (a second one meanwhile is
answered 429 at once) on its own thread at a lower CPU priority (niceness 10), and nothing of it reaches the
prediction metrics, the drift window, the prediction store or the payload archive. Its own metrics are below.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any

from bentoml.exceptions import BentoMLException, UnprocessableEntity
from prometheus_client import Counter, Histogram

from components.common.explain import NotExplainable, contributions
from components.common.profile import ReferenceProfile
from serving.model_service.columns import Batch
from serving.model_service.guard import ASGIApp, Message, Receive, Scope, Send

ROUTE = "/explain"
# Explanations take milliseconds (exact methods) to about a second (the MLP's sampling, 20 wide rows).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CODES = ("2xx", "4xx", "5xx")
# Niceness of the thread that computes explanations: the CPU goes to /predict first (Linux: per thread).
EXPLAIN_NICENESS = 10

EXPLAIN_REQUESTS = Counter(
    "plinth_explain_requests",
    "Requests to /explain by status class (never counted among /predict's requests or rejections).",
    ["code"],
)
EXPLAIN_DURATION = Histogram(
    "plinth_explain_duration_seconds",
    "Seconds from receiving a /explain request to its answer, any status.",
    buckets=DURATION_BUCKETS,
)
EXPLAINED_ROWS = Counter(
    "plinth_explained_rows", "Rows explained on /explain, by method (tree_shap, linear, sampling_shapley).", ["method"]
)


class Explainer:
    """Explains typed batches with one loaded plinth model; one explanation at a time (per worker)."""

    def __init__(self, estimator: Any, profile: ReferenceProfile | None, name: str, version: str) -> None:
        self.estimator = estimator
        self.profile = profile
        self.ident = {"model_name": name, "model_version": version}
        self.busy = threading.Lock()
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="plinth-explain", initializer=_lower_priority)

    def answer(self, batch: Batch) -> dict[str, Any]:
        """Return the /explain response for `batch`.

        Raises:
            UnprocessableEntity: the model is not one of plinth's (no profile, no estimator), so it has no
                explanations (422).
            BentoMLException: 429 while another explanation is computed in this worker.
        """
        if self.estimator is None or self.profile is None:
            raise UnprocessableEntity(
                "explanations are offered for plinth's own models only; this one is served through mlflow.pyfunc"
            )
        if not self.busy.acquire(blocking=False):
            raise BentoMLException(
                "another explanation is being computed in this worker: retry shortly",
                error_code=HTTPStatus.TOO_MANY_REQUESTS,
            )
        try:
            explanation = self.thread.submit(contributions, self.estimator, batch.frame, self.profile).result()
        except NotExplainable as error:
            raise UnprocessableEntity(str(error)) from error
        finally:
            self.busy.release()
        EXPLAINED_ROWS.labels(explanation.method).inc(len(explanation.contributions))
        names, outputs = explanation.feature_names, explanation.outputs
        rows = []
        for base, values, total in zip(
            explanation.base_values.tolist(),
            explanation.contributions.tolist(),
            explanation.totals.tolist(),
            strict=True,
        ):
            rows.append(
                {
                    "output": dict(zip(outputs, total, strict=True)),
                    "base_value": dict(zip(outputs, base, strict=True)),
                    "contributions": {
                        output: {name: feature[k] for name, feature in zip(names, values, strict=True)}
                        for k, output in enumerate(outputs)
                    },
                }
            )
        return {**self.ident, "method": explanation.method, "units": explanation.units, "explanations": rows}


def _lower_priority() -> None:
    """Lower the calling thread's CPU priority where the OS sets it per thread (Linux); elsewhere leave it.

    A torch model computes on a pool of its own threads, which this niceness would not reach: torch is held to
    one thread, the caller's, in this process (a served MLP scores batches of at most 256 rows, where more
    threads cost more in synchronisation than they save: the train step measured the same).
    """
    if sys.platform.startswith("linux"):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), EXPLAIN_NICENESS)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


class ExplainMeter:
    """ASGI middleware that counts and times every POST /explain by status class (rejections included)."""

    def __init__(self, app: ASGIApp, route: str = ROUTE) -> None:
        self.app = app
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Meter a POST to the route; pass everything on."""
        if scope["type"] != "http" or scope["path"] != self.route or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            EXPLAIN_DURATION.observe(time.perf_counter() - started)
            EXPLAIN_REQUESTS.labels(f"{status // 100}xx").inc()
