"""Serving benchmark: plinth service vs `mlflow models serve` vs a naive pyfunc BentoML service.

All three serve the same registered model version on 127.0.0.1 side by side; `hey` loads one server at a
time with one row per request, in interleaved rounds so that load from other work on the machine hits
every server alike. In-process `predict_proba` on one row is the limit. A sustained run on the plinth
service then reports errors and server memory at start and end. Results go to a Markdown file and into
the serving README between the benchmark markers.

Run: `python -m serving.bench.run` (see `--help`; `--sustain-s 10` for a quick run).
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
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from serving.bench.demo_model import RegisteredModel, register_logistic_regression
from serving.bench.load import LoadResult, Target, combine, hey, rss_mib, serving
from serving.model_service import settings
from serving.model_service.settings import Settings

README = Path(__file__).resolve().parents[1] / "model_service" / "README.md"
RESULTS = Path(__file__).resolve().parent / "results.md"
MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"


def targets(port: int, model: RegisteredModel, workers: int) -> list[Target]:
    """Return the three servers on consecutive ports; model and registry reach them through the environment."""
    bentoml = [sys.executable, "-m", "bentoml", "serve"]
    mlflow = [sys.executable, "-m", "mlflow", "models", "serve", "--env-manager", "local"]
    model_uri = f"models:/{model.name}/{model.version}"

    def address(offset: int) -> list[str]:
        return ["--host", "127.0.0.1", "--port", str(port + offset)]

    plinth = [*bentoml, "serving.model_service.service:ModelService", *address(0)]
    naive = [*bentoml, "serving.bench.naive_service:NaivePyfuncService", *address(1)]
    reference = [*mlflow, "-m", model_uri, *address(2), "-w", str(workers)]
    return [
        Target("plinth", plinth, port, "/readyz", "/predict", "instances"),
        Target("naive-bentoml-pyfunc", naive, port + 1, "/readyz", "/predict", "instances"),
        Target("mlflow-models-serve", reference, port + 2, "/ping", "/invocations", "dataframe_records"),
    ]


def in_process(model: RegisteredModel, repeats: int) -> dict[str, float]:
    """Median and p99 (ms) of one-row raw `predict_proba` and of one-row `mlflow.pyfunc` predict."""
    import mlflow

    row = model.features.iloc[[0]]
    pyfunc = mlflow.pyfunc.load_model(f"models:/{model.name}/{model.version}")
    calls = {
        "raw": (lambda: model.model.predict_proba(row), repeats),
        "pyfunc": (lambda: pyfunc.predict(row), repeats // 4),
    }
    timings: dict[str, float] = {}
    for label, (call, count) in calls.items():
        call()
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            call()
            samples.append((time.perf_counter() - start) * 1000)
        timings[f"{label}_p50_ms"] = float(np.percentile(samples, 50))
        timings[f"{label}_p99_ms"] = float(np.percentile(samples, 99))
    return timings


@dataclass(frozen=True)
class Sustained:
    """The long run on the plinth service: load result plus server memory before and after."""

    load: LoadResult
    seconds: float
    rss_start_mib: float
    rss_end_mib: float


def render(results: list[LoadResult], limit: dict[str, float], sustained: Sustained | None, context: str) -> str:
    """Return the Markdown report: context, one table row per server and concurrency, the sustained run."""
    lines = [context, "", "| server | concurrency | ok req/s | p50 ms | p99 ms | errors / requests |"]
    lines.append("|---|---:|---:|---:|---:|---:|")
    for r in results:
        cells = [r.target, r.concurrency, f"{r.ok_per_s:.0f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}"]
        lines.append("| " + " | ".join(map(str, cells)) + f" | {r.errors} / {r.total} |")
    for label, key in (("raw `predict_proba`", "raw"), ("`mlflow.pyfunc` predict", "pyfunc")):
        p50, p99 = limit[f"{key}_p50_ms"], limit[f"{key}_p99_ms"]
        lines.append(f"| in-process {label}, 1 row | 1 | {1000 / p50:.0f} | {p50:.2f} | {p99:.2f} | - |")
    if sustained:
        run = sustained.load
        lines += [
            "",
            f"Sustained run, plinth at concurrency {run.concurrency} for {sustained.seconds:.0f} s: "
            f"{run.ok_per_s:.0f} ok req/s, p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms, "
            f"{run.errors} errors of {run.total} requests; server memory (all processes) "
            f"{sustained.rss_start_mib:.0f} MiB at start, {sustained.rss_end_mib:.0f} MiB at end.",
        ]
    return "\n".join(lines) + "\n"


def write_readme(report: str, readme: Path) -> None:
    """Replace the benchmark section of the README (between the markers) with the new report."""
    text = readme.read_text()
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        readme.write_text(f"{head}{MARK_START}\n{report}{MARK_END}{rest.split(MARK_END, 1)[1]}")


def resolve_model(tracking_uri: str | None, name: str, work: Path) -> RegisteredModel:
    """Use the champion of an existing registry, or register the reference model in a temporary one."""
    if not tracking_uri:
        return register_logistic_regression(f"sqlite:///{work / 'mlflow.db'}", name, "bench")
    from components.common.modeling import load_model, split_features
    from components.ingest.core import load_source
    from serving.model_service.registry import fetch

    ref = fetch(settings.Settings.from_env({settings.ENV_TRACKING_URI: tracking_uri, settings.ENV_MODEL_NAME: name}))
    features, _ = split_features(load_source("sklearn:breast_cancer"), "target")
    return RegisteredModel(tracking_uri, name, ref.version, load_model(str(ref.local_dir)), features)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description="Serving benchmark (see the module docstring).")
    parser.add_argument("--tracking-uri", help="benchmark this registry's champion (default: a fresh temporary model)")
    parser.add_argument("--model-name", default=settings.DEFAULT_MODEL_NAME)
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--duration-s", type=float, default=3.0, help="seconds per run of one server and level")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the table shows medians")
    parser.add_argument("--sustain-s", type=float, default=60.0, help="sustained run at the top level (0: skip)")
    parser.add_argument(
        "--workers", type=int, default=Settings.from_env({}).workers, help="worker processes of every server"
    )
    parser.add_argument("--port", type=int, default=3999)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--readme", type=Path, default=README)
    return parser.parse_args(argv)


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


def measure(args: argparse.Namespace, argv: list[str] | None, work: Path) -> str:
    """Run every server at every concurrency level, then the sustained run; return the report."""
    model = resolve_model(args.tracking_uri, args.model_name, work)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "BENTOML_HOME": str(work / "bentoml"),
        settings.ENV_TRACKING_URI: model.tracking_uri,
        settings.ENV_MODEL_NAME: model.name,
        settings.ENV_MODEL_VERSION: model.version,
        settings.ENV_WORKERS: str(args.workers),
    }
    levels = [int(level) for level in args.concurrency.split(",")]
    context = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} with {os.cpu_count()} CPUs, "
        f"{args.workers} worker process(es) per server, load average {os.getloadavg()[0]:.1f} at start: the "
        "machine is shared with other agents' builds and tests, so absolute numbers are noisy and pessimistic.\n"
        f"Command: `{' '.join(['python -m serving.bench.run', *(argv if argv is not None else sys.argv[1:])])}`; "
        f"model `models:/{model.name}/{model.version}`"
        f"{'' if args.tracking_uri else ' (breast cancer, StandardScaler + LogisticRegression)'}; "
        f"one row per request; `hey` on loopback; medians of {args.rounds} interleaved rounds of "
        f"{args.duration_s:g} s per server and level (errors and requests summed); ok req/s counts 2xx only."
    )
    import mlflow

    mlflow.set_tracking_uri(model.tracking_uri)
    mlflow.set_registry_uri(model.tracking_uri)
    limit = in_process(model, repeats=2000)
    row = model.features.iloc[0].to_dict()
    servers = targets(args.port, model, args.workers)
    samples: dict[tuple[str, int], list[LoadResult]] = defaultdict(list)
    with ExitStack() as stack:
        processes = {t.name: stack.enter_context(serving(t, env, work / f"{t.name}.log")) for t in servers}
        bodies = {t.name: work / f"{t.name}.json" for t in servers}
        for target in servers:
            bodies[target.name].write_text(json.dumps({target.body_key: [row]}))
            hey(target.url, bodies[target.name], max(levels), 2.0, target.name)  # warm-up, not reported
        # Interleaved rounds: load from other work on the machine drifts, and should hit every server alike.
        for _ in range(args.rounds):
            for concurrency in levels:
                for target in servers:
                    run = hey(target.url, bodies[target.name], concurrency, args.duration_s, target.name)
                    samples[(target.name, concurrency)].append(run)
                    print(run, flush=True)
        sustained = None
        if args.sustain_s > 0:
            plinth = servers[0]
            rss_start = rss_mib(processes[plinth.name])
            run = hey(plinth.url, bodies[plinth.name], max(levels), args.sustain_s, plinth.name)
            sustained = Sustained(run, args.sustain_s, rss_start, rss_mib(processes[plinth.name]))
    results = [combine(samples[(t.name, level)]) for t in servers for level in levels]
    return render(results, limit, sustained, context)


if __name__ == "__main__":
    main()
