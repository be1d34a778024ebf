"""Serving benchmark: the plinth service per task, its pyfunc path, other servers, an empty endpoint.

Three models are registered in a temporary store: binary (breast cancer, all numbers), multiclass (wine)
and mixed types with missing values (the generated churn table). Each is served twice by the plinth
service, side by side: as plinth registers it (the fast path: the raw estimator) and the same fitted
estimator logged with plain `mlflow.sklearn.log_model` (the pyfunc path), so the difference is what the
pyfunc path costs. The binary model is also served by `mlflow models serve` and by a naive BentoML
service around `mlflow.pyfunc`. `hey` loads one server at a time with one row per request, in interleaved
rounds so that load from other work on the machine hits every server alike. A sustained run on the binary
fast path then reports errors and memory. Results go to a Markdown file and into the serving README.

The empty endpoint (`empty_service.py`: the same request validation and worker count, a constant answer)
is the framework's floor, measured in the same run: every row is also given as a ratio to it. Because
BentoML's batcher used to keep the wait it learned under load, the binary fast path and the empty endpoint
are also measured at concurrency 1 some seconds after a burst at the top level, and the per-stage cost of one
request inside the service (`breakdown.py`) says where the time beyond the floor goes.

Run: `python -m serving.bench.run` (see `--help`; `--quick` for a one-round smoke run of about 2 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from serving.bench import breakdown
from serving.bench.demo_model import RegisteredModel, register_plain_sklearn, register_plinth_model
from serving.bench.load import LoadResult, Target, combine, hey, rss_mib, serving
from serving.bench.report import AfterBurst, InProcess, Sustained, render, write_readme
from serving.embedded.train_drill import BREAST_CANCER, DrillData
from serving.model_service import settings
from serving.model_service.settings import Settings

README = Path(__file__).resolve().parents[1] / "model_service" / "README.md"
RESULTS = Path(__file__).resolve().parent / "results.md"
CEILING = "binary empty-endpoint"
# (key, dataset, words for the report): the models every run registers and serves.
MODELS = (
    ("binary", BREAST_CANCER, "breast cancer, 30 numbers"),
    ("multiclass", DrillData("sklearn:wine"), "wine, 3 classes, 13 numbers"),
    ("mixed", DrillData("synthetic:churn", "churned"), "churn: numbers, text, booleans, integers, nulls"),
)


def register_models(tracking_uri: str) -> dict[str, tuple[RegisteredModel, RegisteredModel]]:
    """Register each model plinth's way and, the same fitted estimator, plainly: {key: (fast, pyfunc)}."""
    models = {}
    for key, data, _ in MODELS:
        fast = register_plinth_model(tracking_uri, f"bench-{key}", data, "bench")
        plain = register_plain_sklearn(
            tracking_uri, f"bench-{key}-pyfunc", fast.model, fast.features, fast.task, "bench"
        )
        models[key] = (fast, plain)
    return models


def targets(port: int, models: dict[str, tuple[RegisteredModel, RegisteredModel]], workers: int) -> list[Target]:
    """Return every server on consecutive ports; each names its model version through its environment."""
    bentoml = [sys.executable, "-m", "bentoml", "serve"]
    servers: list[Target] = []

    def add(name: str, command: list[str], model: RegisteredModel, health: str = "/readyz", **form: str) -> None:
        at = port + len(servers)
        address = ["--host", "127.0.0.1", "--port", str(at)]
        env = {settings.ENV_MODEL_NAME: model.name, settings.ENV_MODEL_VERSION: model.version}
        route, key = form.get("route", "/predict"), form.get("key", "instances")
        servers.append(Target(name, [*command, *address], at, health, route, key, env))

    for key, (fast, plain) in models.items():
        add(f"{key} fast path", [*bentoml, "serving.model_service.service:ModelService"], fast)
        add(f"{key} pyfunc path", [*bentoml, "serving.model_service.service:ModelService"], plain)
    binary = models["binary"][0]
    add(CEILING, [*bentoml, "serving.bench.empty_service:EmptyService"], binary)
    add("binary naive-bentoml-pyfunc", [*bentoml, "serving.bench.naive_service:NaivePyfuncService"], binary)
    reference = [sys.executable, "-m", "mlflow", "models", "serve", "--env-manager", "local", "-w", str(workers)]
    model_uri = f"models:/{binary.name}/{binary.version}"
    add(
        "binary mlflow-models-serve",
        [*reference, "-m", model_uri],
        binary,
        "/ping",
        route="/invocations",
        key="dataframe_records",
    )
    return servers


def median_ms(call: Callable[[], object], repeats: int) -> float:
    """Return the median latency of `call` in milliseconds (after one call to warm it)."""
    call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(samples, 50))


def in_process(models: dict[str, tuple[RegisteredModel, RegisteredModel]], repeats: int) -> list[InProcess]:
    """Median one-row latency of each model three ways, on the same row.

    Its fitted pipeline on a DataFrame, its plain twin through `mlflow.pyfunc`, and the service's fast path
    (the typed batch, then the path its warm-up chose).
    """
    import mlflow.pyfunc

    from components.common.modeling import predict_output
    from serving.model_service import registry
    from serving.model_service.columns import FrameBuilder
    from serving.model_service.predictor import FastPredictor

    limits = []
    for key, (fast, plain) in models.items():
        row = fast.features.iloc[[0]]
        env = {settings.ENV_TRACKING_URI: plain.tracking_uri, settings.ENV_MODEL_NAME: plain.name}
        pyfunc = mlflow.pyfunc.load_model(str(registry.fetch(Settings.from_env(env)).local_dir))
        raw = median_ms(partial(predict_output, fast.model, fast.task, row), repeats)
        ref = registry.fetch(Settings.from_env({**env, settings.ENV_MODEL_NAME: fast.name}))
        predictor, frames = FastPredictor(ref, fast.task), FrameBuilder(ref.columns)
        predictor.load()
        predictor.warm_up(frames.build(fast.instances(0, 20)))
        instance = fast.instances(0, 1)
        served = median_ms(partial(_served, predictor, frames, instance), repeats)
        limits.append(InProcess(key, raw, median_ms(partial(pyfunc.predict, row), repeats), served, predictor.path))
    return limits


def _served(predictor: Any, frames: Any, instances: list[dict[str, Any]]) -> object:
    """Score `instances` as the service does: the typed batch, then the predictor."""
    return predictor.predict(frames.build(instances))


def fast_paths() -> list[str]:
    """Return the names of the plinth fast-path servers, one per model."""
    return [f"{key} fast path" for key, _, _ in MODELS]


def after_burst(
    args: argparse.Namespace, servers: list[Target], bodies: dict[str, Path], top: int, low: int
) -> list[AfterBurst]:
    """Burst each server at `top`, leave it idle, then load it at `low`; rounds interleaved over the servers."""
    runs: dict[str, list[tuple[LoadResult, LoadResult]]] = defaultdict(list)
    for _ in range(args.rounds):
        for target in servers:
            burst = hey(target.url, bodies[target.name], top, args.burst_s, target.name)
            print(burst, flush=True)
            time.sleep(args.after_s)  # the idle time is what is measured: nothing to poll for
            after = hey(target.url, bodies[target.name], low, args.duration_s, target.name)
            print(after, flush=True)
            runs[target.name].append((burst, after))
    return [
        AfterBurst(combine([b for b, _ in pairs]), combine([a for _, a in pairs]), args.burst_s, args.after_s)
        for pairs in runs.values()
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description="Serving benchmark (see the module docstring).")
    parser.add_argument("--concurrency", default="1,32", help="comma-separated concurrency levels")
    parser.add_argument("--duration-s", type=float, default=3.0, help="seconds per run of one server and level")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the table shows medians")
    parser.add_argument("--sustain-s", type=float, default=60.0, help="sustained run at the top level (0: skip)")
    parser.add_argument("--burst-s", type=float, default=15.0, help="burst at the top level before the after-burst row")
    parser.add_argument("--after-s", type=float, default=10.0, help="idle seconds between the burst and the row")
    parser.add_argument("--quick", action="store_true", help="one round of 2 s per server and level, no sustained run")
    parser.add_argument(
        "--workers", type=int, default=Settings.from_env({}).workers, help="worker processes of every server"
    )
    parser.add_argument("--port", type=int, default=3990)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    if args.quick:
        args.duration_s, args.rounds, args.sustain_s = 2.0, 1, 0.0
    return args


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark in a temporary directory (always removed) and write the report."""
    args = parse_args(argv)
    if shutil.which("hey") is None:
        raise SystemExit("bench: `hey` is not installed (apt-get install -y hey)")
    work = Path(tempfile.mkdtemp(prefix="plinth-bench-"))
    try:
        report = measure(args, argv, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.output.write_text(f"# Serving benchmark results\n\n{report}")
    write_readme(report, args.readme)
    print(report)


def context_line(args: argparse.Namespace, argv: list[str] | None) -> str:
    """Return the report's first paragraph: machine, load, command, method."""
    command = " ".join(["python -m serving.bench.run", *(argv if argv is not None else sys.argv[1:])])
    models = "; ".join(f"{key}: {words}" for key, _, words in MODELS)
    return (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} with {os.cpu_count()} CPUs, "
        f"{args.workers} worker process(es) per server, load average {os.getloadavg()[0]:.1f} at start: the "
        "machine is shared with other agents' builds and tests, so absolute numbers are noisy and pessimistic.\n"
        f"Command: `{command}`; models ({models}) fitted with the scikit-learn candidate; one row per request; "
        f"`hey` on loopback; per level (rising), medians of {args.rounds} round(s) of {args.duration_s:g} s "
        "interleaved over the servers (errors and requests summed); ok req/s counts 2xx only."
    )


def measure(args: argparse.Namespace, argv: list[str] | None, work: Path) -> str:
    """Run every server at every concurrency level, then the sustained run; return the report."""
    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
    context = context_line(args, argv)
    models = register_models(tracking_uri)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "BENTOML_HOME": str(work / "bentoml"),
        settings.ENV_TRACKING_URI: tracking_uri,
        settings.ENV_REGISTRY_URI: tracking_uri,
        settings.ENV_WORKERS: str(args.workers),
    }
    levels = [int(level) for level in args.concurrency.split(",")]
    limits = in_process(models, repeats=1000)
    stages = {
        f"{key} fast path": breakdown.measure(
            {**env, settings.ENV_MODEL_NAME: fast.name, settings.ENV_MODEL_VERSION: fast.version}
        )
        for key, (fast, _) in models.items()
    }
    servers = targets(args.port, models, args.workers)
    samples: dict[tuple[str, int], list[LoadResult]] = defaultdict(list)
    with ExitStack() as stack:
        processes = {t.name: stack.enter_context(serving(t, env, work / f"{t.port}.log")) for t in servers}
        bodies = {t.name: work / f"{t.port}.json" for t in servers}
        for target in servers:
            model = next(m for pair in models.values() for m in pair if m.name == target.env[settings.ENV_MODEL_NAME])
            bodies[target.name].write_text(json.dumps({target.body_key: model.instances(0, 1)}))
            hey(target.url, bodies[target.name], min(levels), 2.0, target.name)  # warm-up, not reported
        # Levels in rising order, rounds within a level: BentoML's batcher learns how long to wait for a batch
        # from recent traffic, so a lone request measured after a burst would wait for company that never comes.
        for concurrency in sorted(levels):
            for _ in range(args.rounds):
                for target in servers:
                    run = hey(target.url, bodies[target.name], concurrency, args.duration_s, target.name)
                    samples[(target.name, concurrency)].append(run)
                    print(run, flush=True)
        compared = [t for t in servers if t.name in (CEILING, *fast_paths())]
        after = after_burst(args, compared, bodies, max(levels), min(levels))
        sustained = None
        if args.sustain_s > 0:
            first = servers[0]
            rss_start = rss_mib(processes[first.name])
            run = hey(first.url, bodies[first.name], max(levels), args.sustain_s, first.name)
            sustained = Sustained(run, args.sustain_s, rss_start, rss_mib(processes[first.name]))
    results = [combine(samples[(t.name, level)]) for t in servers for level in levels]
    pairs = [(f"{key} fast path", f"{key} pyfunc path") for key in models]
    return render(results, limits, sustained, context, pairs, after, stages, CEILING)


if __name__ == "__main__":
    main()
