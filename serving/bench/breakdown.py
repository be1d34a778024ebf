"""Where one single-row request's time goes inside the plinth service, stage by stage, in process.

Each stage of the request path is called as the server calls it, on the served model's first row, and
timed alone (median of many calls): the guard middleware, request validation, the typed batch, the model,
the output check, the input monitor (drift window), the output metrics, the answers and the response
serialisation. Prometheus metrics write to a multiprocess directory as in the server. What is left of the
HTTP latency beyond the empty endpoint and the sum of these stages is BentoML's batching and threads.

Run (the model variables of the service set): `python -m serving.bench.breakdown` prints one JSON object
{stage: median microseconds}; the serving benchmark runs it as a subprocess and reports the table.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    import bentoml

REPEATS = 2000


def median_us(call: Callable[[], object], repeats: int = REPEATS) -> float:
    """Return the median duration of `call` in microseconds (after a few calls to warm it)."""
    for _ in range(10):
        call()
    samples = np.empty(repeats)
    for index in range(repeats):
        start = time.perf_counter()
        call()
        samples[index] = time.perf_counter() - start
    return float(np.median(samples) * 1e6)


def guard_call(guard: Any, body: bytes) -> Callable[[], object]:
    """Return a call that passes one request through the guard to an app that reads the body and answers."""
    scope = {
        "type": "http",
        "path": "/predict",
        "method": "POST",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        return None

    loop = asyncio.new_event_loop()
    return lambda: loop.run_until_complete(guard(scope, receive, send))


def stages(metrics_dir: str) -> dict[str, float]:
    """Time each stage of the request path on one row of the configured model; {stage: median µs}.

    The prediction store is an SQLite file under `metrics_dir` (a temporary directory), the one-machine
    default. The request path only stamps ids and queues rows; the writer thread's batched write is timed
    apart, per row of a FLUSH_ROWS batch: it runs off the request path but on the same worker's CPU.
    """
    from serving.model_service import schema, service
    from serving.model_service.archive import PayloadArchive
    from serving.model_service.columns import FrameBuilder
    from serving.model_service.drift import InputMonitor
    from serving.model_service.guard import PredictGuard
    from serving.model_service.monitor import OutputMonitor
    from serving.model_service.recorder import FLUSH_ROWS, Recorder
    from serving.model_service.store import PredictionStore

    model, predictor, task = service.MODEL, service.PREDICTOR, service.TASK
    body = json.dumps(service.EXAMPLE_INPUT).encode()
    request_type: Any = service.PredictRequest
    predictor.load()
    frames = FrameBuilder(model.columns)
    instances = request_type.model_validate_json(body).instances
    predictor.warm_up(frames.build(service.WARM_UP_ROWS))
    batch = frames.build(instances)
    output = predictor.predict(batch)
    inputs = InputMonitor(model.columns, model.profile, service.SETTINGS.drift_window)
    target = model.profile.target_profile if model.profile else None
    outputs = OutputMonitor(task, target.bin_edges if target else None)
    answers = schema.answers(task, output, model.name, model.version)
    store = PredictionStore(str(Path(metrics_dir) / "predictions.sqlite"), service.SETTINGS.feedback_max_age_s)
    recorder = Recorder(store, model.name, model.version, task)  # its thread is not started: flushes are timed
    archive = PayloadArchive(str(Path(metrics_dir) / "payloads"), max_rows=10**9)  # its thread is not started

    def enqueue() -> None:
        recorder.stamp(answers)
        if recorder.pending() >= FLUSH_ROWS:
            recorder.flush()  # outside the timed stage's median: once per FLUSH_ROWS calls

    def write_batch() -> None:
        for _ in range(FLUSH_ROWS):
            recorder.stamp(answers)
        recorder.flush()

    recorder.flush()  # creates the schema
    response_type = cast("bentoml.Service[Any]", service.ModelService).apis["predict"].output_spec

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    timed: dict[str, Callable[[], object]] = {
        "guard middleware": guard_call(PredictGuard(app), body),
        "request validation (pydantic, raw JSON)": lambda: request_type.model_validate_json(body),
        "typed batch (FrameBuilder)": lambda: frames.build(instances),
        "model (preprocessing + estimator)": lambda: predictor.predict(frames.build(instances)),
        "output check (finite)": lambda: np.all(np.isfinite(output)),
        "input monitor (drift window, ranges)": lambda: inputs.observe(batch),
        "output metrics (classes, probabilities)": lambda: outputs.observe(output),
        "answers (response objects)": lambda: schema.answers(task, output, model.name, model.version),
        "request id + prediction-store enqueue": enqueue,
        "payload-archive enqueue (inputs + answers)": lambda: archive.predictions(
            model.name, model.version, 0, batch, answers
        ),
        "response validation + JSON": lambda: response_type(answers).model_dump_json(),
    }
    result = {name: median_us(call) for name, call in timed.items()}
    # The writer thread's batched write per row (off the request path, on the worker's CPU).
    batch_us = median_us(write_batch, repeats=20)
    result["prediction-store write per row (writer thread, batches)"] = max(
        0.0, batch_us / FLUSH_ROWS - result["request id + prediction-store enqueue"]
    )
    result["model (preprocessing + estimator)"] -= result["typed batch (FrameBuilder)"]
    return result


def measure(env: dict[str, str]) -> dict[str, float]:
    """Run the breakdown in a fresh process with `env` (the service's model variables); {stage: median µs}."""
    command = [sys.executable, "-m", "serving.bench.breakdown"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the stage breakdown failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    stages: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return stages


def main() -> None:
    """Print the stage timings as JSON (metrics in a temporary multiprocess directory, as in the server)."""
    with tempfile.TemporaryDirectory(prefix="plinth-breakdown-") as metrics:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics)
        print(json.dumps(stages(metrics)))


if __name__ == "__main__":
    main()
