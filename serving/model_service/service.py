"""The plinth model service: `bentoml serve serving.model_service.service:ModelService`.

The request schema is generated from the registered model's signature and the response from its task, and
BentoML builds a service's schemas when the class is defined, so importing this module resolves the
configured model in the MLflow registry and fetches its files (a model served through `mlflow.pyfunc` is
also loaded, since only the loaded model can say what it answers). A model that cannot be resolved stops
the process with one line and a non-zero exit status; one that cannot be loaded or fails its warm-up
prediction stops the worker before it ever reports ready. A version whose files fail their signature check
is not read at all: the service starts without it, logs one line, sets
`plinth_model_verification{result="failed"}`, answers /predict 503, and never reports ready.

Every prediction is answered with a `request_id` and queued for the shared prediction store (written in
batches off the request path), so that its ground-truth label can come later on `POST /feedback`, on any
replica (`recorder.py`, `store.py`, `feedback_route.py`). With `PLINTH_PAYLOAD_ARCHIVE`, its inputs and
answers (and every accepted label) are also written as partitioned Parquet, the production dataset
(`archive.py`).
"""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING, Any, cast

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument, ServiceUnavailable

from components.common.signing import UNVERIFIED
from serving.model_service import batching, contract, examples, per_request, registry, schema, v2_route
from serving.model_service.archive import PayloadArchive
from serving.model_service.clients import Clients
from serving.model_service.columns import FrameBuilder
from serving.model_service.drift import InputMonitor
from serving.model_service.explain import ROUTE as EXPLAIN_ROUTE
from serving.model_service.explain import Explainer, ExplainMeter
from serving.model_service.feedback_route import FeedbackRoute, Judge
from serving.model_service.guard import PredictGuard
from serving.model_service.monitor import MODEL_INFO, MODEL_VERIFICATION, OutputMonitor
from serving.model_service.predictor import Predictor, RefusedPredictor, check_output, open_predictor
from serving.model_service.recorder import Recorder
from serving.model_service.settings import Settings, SettingsError
from serving.model_service.store import PredictionStore
from serving.model_service.trace import traced_rows

# Adaptive batching: rows from concurrent requests are scored together, up to this many rows per call.
MAX_BATCH_SIZE = 256
# The batcher sheds load (answered 429) when a request would wait longer than this for its batch.
MAX_LATENCY_MS = 500
# Request-duration buckets (seconds) fine enough to read a p99 anywhere between 5 and 500 ms.
DURATION_BUCKETS = [
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
]  # fmt: skip

logger = logging.getLogger("plinth.model_service")
batching.install()

REFUSED: registry.ModelRefused | None = None
try:
    SETTINGS = Settings.from_env()
    try:
        MODEL = registry.fetch(SETTINGS)
        PREDICTOR: Predictor = open_predictor(MODEL, SETTINGS)
    except registry.ModelRefused as refusal:  # defined without the model, so that it can say why and stay unready
        REFUSED, MODEL, PREDICTOR = refusal, refusal.stand_in(), RefusedPredictor(str(refusal))
    # Each request's first row is marked, so that no single request fills the drift window or the log.
    PredictRequest = per_request.marked(schema.request_model(MODEL.columns, SETTINGS.max_instances))
    EXAMPLE_SOURCE, WARM_UP_ROWS = examples.first_valid(MODEL, PredictRequest)
    # The same instance rules as /predict, with explain's own (small) row bound; never batched with predictions.
    ExplainRequest = schema.request_model(MODEL.columns, SETTINGS.explain_max_rows)
except (SettingsError, registry.ModelLoadError, ValueError) as error:
    raise SystemExit(f"plinth model service: {error}") from None

TASK = PREDICTOR.task
DRIFT = "on" if MODEL.profile is not None else "off"
EXAMPLE_INPUT = {"instances": WARM_UP_ROWS[:1]}
# The prediction store (connections open lazily, in each worker); none when feedback is off or the model refused.
STORE = (
    PredictionStore(SETTINGS.prediction_store, SETTINGS.feedback_max_age_s)
    if SETTINGS.feedback and REFUSED is None
    else None
)
JUDGE = Judge(STORE, MODEL.name, MODEL.version, TASK, SETTINGS.feedback_max_age_s)
# Labelling clients (bearer tokens); each worker takes its share of the rate, so a pod takes about the setting.
CLIENTS = Clients(
    SETTINGS.feedback_clients,
    SETTINGS.feedback_rate / SETTINGS.workers,
    SETTINGS.feedback_burst / SETTINGS.workers,
)
if TYPE_CHECKING:
    PredictResponseBody = list[dict[str, Any]]
else:
    PredictResponseBody = schema.response_type(TASK)


@bentoml.service(
    workers=SETTINGS.workers,
    traffic={"timeout": SETTINGS.timeout_s, "max_concurrency": SETTINGS.max_concurrency},
    metrics={"enabled": True, "namespace": "bentoml_service", "duration": {"buckets": DURATION_BUCKETS}},
    logging={"access": {"enabled": False}},
)
class ModelService:
    """Scores instances with one registered model version and meters what it sees and answers."""

    def __init__(self) -> None:
        self.ready = False
        MODEL_VERIFICATION.labels(MODEL.name, MODEL.version, MODEL.verdict.result).set(1)
        first_worker = bentoml.server_context.worker_index in (None, 1)  # the verdict is logged once per process
        if REFUSED is not None:
            if first_worker:
                logger.error("%s", MODEL.verdict.message)
            return
        if MODEL.verdict.result == UNVERIFIED and first_worker:
            logger.warning("%s", MODEL.verdict.message)
        PREDICTOR.load()
        self.frames = FrameBuilder(MODEL.columns)
        self._warm_up()
        self.explainer = Explainer(getattr(PREDICTOR, "estimator", None), MODEL.profile, MODEL.name, MODEL.version)
        self.inputs = InputMonitor(
            MODEL.columns,
            MODEL.profile,
            SETTINGS.drift_window,
            SETTINGS.drift_min_requests,
        )
        self.requests = per_request.Requests(SETTINGS.drift_rows_per_request)
        target = MODEL.profile.target_profile if MODEL.profile else None
        self.outputs = OutputMonitor(TASK, target.bin_edges if target else None)
        archive = PayloadArchive(SETTINGS.payload_archive) if SETTINGS.payload_archive else None
        self.recorder = Recorder(STORE, MODEL.name, MODEL.version, TASK, SETTINGS.prediction_store_buffer, archive)
        self.recorder.start()
        JUDGE.recorder, JUDGE.archive = self.recorder, archive
        MODEL_INFO.labels(MODEL.name, MODEL.version, TASK.kind, DRIFT).set(1)
        if DRIFT == "off":
            logger.warning("%s v%s has no reference profile: input drift is not scored", MODEL.name, MODEL.version)
        # Everything allocated so far (MLflow, pandas, the model) lives as long as the process: moving it
        # out of the collector's reach, and collecting the young generation less often, removed ~0.3 s
        # stalls that set the p99 under load (387 ms -> 66 ms at concurrency 32 in the benchmark).
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        self.ready = True

    def _warm_up(self) -> None:
        """Score the example rows once through the request path; a model that fails never serves."""
        instances = PredictRequest.model_validate({"instances": WARM_UP_ROWS}).instances  # type: ignore[attr-defined]
        try:
            output = PREDICTOR.warm_up(self.frames.build(instances))
        except Exception as error:  # a model that cannot predict must not serve
            raise registry.ModelLoadError(f"warm-up prediction on {EXAMPLE_SOURCE} failed: {error}") from error
        check_output(TASK, output, len(instances))

    @bentoml.on_shutdown
    def write_queued_predictions(self) -> None:
        """On a graceful stop (SIGTERM), write what the worker still holds for the store (one try)."""
        recorder = getattr(self, "recorder", None)
        if recorder is not None:
            recorder.close()

    def __is_ready__(self) -> bool:
        """Report ready only once the model is loaded and its warm-up prediction passed."""
        return self.ready

    @bentoml.api(
        route="/predict",
        batchable=True,
        max_batch_size=MAX_BATCH_SIZE,
        max_latency_ms=MAX_LATENCY_MS,
        input_spec=PredictRequest,
    )
    def predict(self, instances: list[Any]) -> PredictResponseBody:
        """Predict each instance (records or columnar; the response per task is in the README).

        Each prediction gets a `request_id` and is queued for the store, for `POST /feedback`. A batch mixes
        requests, so a mirrored (shadow) copy cannot be told apart here and is stored too: its ids are never
        labelled.
        """
        if REFUSED is not None:
            raise ServiceUnavailable(str(REFUSED))
        batch = self.frames.build(instances)
        segments = self.requests.split(instances)  # which request each row is from: caps what one adds
        try:
            output = PREDICTOR.predict(batch)
        except (ValueError, TypeError) as error:  # the model refused values its signature allows
            raise InvalidArgument(f"the model cannot score these instances: {error}") from error
        if output.dtype != object and not np.all(np.isfinite(output)):
            raise InvalidArgument("the model returned a non-finite output for these instances")
        self.inputs.observe(batch, *per_request.drift_rows(segments))
        self.outputs.observe(output)
        answers = schema.answers(TASK, output, MODEL.name, MODEL.version)
        logged = per_request.log_rows(segments, SETTINGS.log_rows_per_request)
        self.recorder.stamp(answers, batch, logged, traced_rows(instances, segments))
        return answers

    if SETTINGS.explain:

        @bentoml.api(route=EXPLAIN_ROUTE, input_spec=ExplainRequest)
        def explain(self, instances: list[Any]) -> dict[str, Any]:
            """Return each instance's per-feature contributions and base value (`explain.py`); not a prediction."""
            if REFUSED is not None:
                raise ServiceUnavailable(str(REFUSED))
            return self.explainer.answer(self.frames.build(instances))


def _contract() -> bytes:
    """Return the exact OpenAPI document (BentoML's, with the /predict operation written from the model)."""
    generic = cast("bentoml.Service[ModelService]", ModelService).openapi_spec.asdict()
    explain_rows = SETTINGS.explain_max_rows if SETTINGS.explain else 0
    return contract.document(
        generic,
        MODEL.columns,
        TASK,
        SETTINGS.max_instances,
        EXAMPLE_INPUT,
        (MODEL.name, MODEL.version),
        explain_rows=explain_rows,
    )


cast("bentoml.Service[ModelService]", ModelService).add_asgi_middleware(
    PredictGuard,
    route="/predict",
    max_body_bytes=SETTINGS.max_body_bytes,
    chaos_error_rate=SETTINGS.chaos_error_rate,
    chaos_latency_ms=SETTINGS.chaos_latency_ms,
    refusal=None if REFUSED is None else str(REFUSED),
)
cast("bentoml.Service[ModelService]", ModelService).add_asgi_middleware(
    FeedbackRoute,
    judge=JUDGE,
    clients=CLIENTS,
)
cast("bentoml.Service[ModelService]", ModelService).add_asgi_middleware(contract.PublishedContract, build=_contract)
if SETTINGS.explain:  # metered outside its guard, so that its rejections count as explain requests too
    cast("bentoml.Service[ModelService]", ModelService).add_asgi_middleware(ExplainMeter)
    cast("bentoml.Service[ModelService]", ModelService).add_asgi_middleware(
        PredictGuard,
        route=EXPLAIN_ROUTE,
        max_body_bytes=SETTINGS.max_body_bytes,
        refusal=None if REFUSED is None else str(REFUSED),
        count_errors=False,
    )
v2_route.install(cast("bentoml.Service[ModelService]", ModelService), MODEL, TASK, SETTINGS, REFUSED)
