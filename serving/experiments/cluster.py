"""`python -m serving.experiments run`: one experiment beside a cluster's serving stack, to a recorded decision.

The chart routes the users (its `experiment.*` values: control on the stable track, treatment on the canary
track) and runs this loop as a Deployment (`experiment.decision`). It reads the outcomes from the shared
prediction store every pod writes to (`PLINTH_PREDICTION_STORE`, a `postgresql://` URL), judges the guards on
Prometheus (the ServiceMonitor labels each series with its `track`, so the treatment is the canary to the
control's stable, as in a rollout), and records the experiment in MLflow (`MLFLOW_TRACKING_URI`). The same
loop `make ab` runs locally; only the metrics source differs. Exit 0 with a decision, 2 when refused, 3 when
`--keep-running` was stopped before a decision (the next loop resumes it).

`--keep-running` is the Deployment's mode: a pod is stopped by rollouts and node drains and restarted when it
exits, so the loop must neither end the experiment on SIGTERM nor decide it twice. It counts from `--since`,
records nothing when stopped undecided, tags its record with `--since`, finds that record when restarted, and
after the decision waits for SIGTERM instead of exiting.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

from mlflow import MlflowClient
from prometheus_client import Counter, Gauge, start_http_server

from components.common.tracking import connect
from serving.experiments.guards import Guards
from serving.experiments.report import EXPERIMENT, SINCE_TAG, log_experiment
from serving.experiments.run import Interrupted, Refused, resolve_versions, run_experiment
from serving.experiments.spec import ExperimentSpec, load_experiment
from serving.model_service.settings import ENV_PREDICTION_STORE, feedback_max_age_s
from serving.model_service.store import PredictionStore
from serving.rollout.core.spec import SpecError
from serving.rollout.edges.query_prometheus import PrometheusSource

EXIT_DECIDED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 3
ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
LOOKS = Counter("plinth_experiment_looks", "Looks of the experiment's decision loop.", ["experiment"])
DECIDED = Gauge("plinth_experiment_decided", "1 once the experiment's decision is recorded.", ["experiment"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `run`; the URIs that carry credentials default to the chart's environment variables."""
    parser.add_argument("--spec", required=True, help="experiment spec (YAML, serving/experiments/README.md)")
    parser.add_argument("--model-name", required=True, help="registered model both tracks serve")
    parser.add_argument("--tracking-uri", help=f"MLflow tracking URI (versions, record); default ${ENV_TRACKING_URI}")
    parser.add_argument(
        "--store", help=f"the shared prediction store (postgresql:// or SQLite); default ${ENV_PREDICTION_STORE}"
    )
    parser.add_argument("--prometheus", required=True, help="Prometheus HTTP API the guards read (URL)")
    parser.add_argument(
        "--since",
        type=float,
        help="when the experiment began (Unix seconds; default now): a restarted loop counts from there",
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="a Deployment's loop: SIGTERM records no decision, a recorded one is not made again, exit only on SIGTERM",
    )
    parser.add_argument("--metrics-port", type=int, help="serve /metrics (looks, decided) on this port")


def recorded_decision(client: MlflowClient, name: str, since_ms: int) -> str | None:
    """Return the decision a loop of this experiment (name and start) already recorded, or None."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return None
    query = f"tags.`{SINCE_TAG}` = '{since_ms}' and attributes.run_name = '{name}'"
    runs = client.search_runs([experiment.experiment_id], filter_string=query, max_results=1)
    if not runs:
        return None
    tags = runs[0].data.tags
    winner = tags.get("plinth.experiment.winner")
    decided = tags.get("plinth.experiment.decision", "")
    return decided + (f" ({winner})" if winner else "") + f", run {runs[0].info.run_id}"


def usage(args: argparse.Namespace) -> tuple[ExperimentSpec, str, str] | str:
    """Return the spec and both URIs, or the one line that refuses the command."""
    tracking_uri = args.tracking_uri or os.environ.get(ENV_TRACKING_URI)
    if not tracking_uri:
        return f"--tracking-uri: required (or ${ENV_TRACKING_URI})"
    store = args.store or os.environ.get(ENV_PREDICTION_STORE)
    if not store:
        return f"--store: required (or ${ENV_PREDICTION_STORE})"
    if args.keep_running and args.since is None:
        return "--since: required with --keep-running (a restarted loop must count from the same start)"
    try:
        spec = load_experiment(args.spec)
    except SpecError as error:
        return f"bad spec {args.spec}: {error}"
    if len(spec.treatments) != 1:
        return f"variants: a cluster runs two (its stable and canary tracks), got {len(spec.variants)}"
    return spec, tracking_uri, store


def run(args: argparse.Namespace) -> int:
    """Resolve the variants, look until a decision, record it; return the exit status."""
    checked = usage(args)
    if isinstance(checked, str):
        print(f"plinth experiment: {checked}")
        return EXIT_USAGE
    spec, tracking_uri, store_uri = checked
    client = connect(tracking_uri)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.metrics_port is not None:
        start_http_server(args.metrics_port)
    since_ms = None if args.since is None else int(args.since * 1000)
    if args.keep_running and since_ms is not None and (earlier := recorded_decision(client, spec.name, since_ms)):
        DECIDED.labels(spec.name).set(1)
        print(f"experiment {spec.name}: already decided: {earlier}; waiting for SIGTERM")
        stop.wait()
        return EXIT_DECIDED
    try:
        versions = resolve_versions(client, args.model_name, spec)
    except Refused as error:
        print(f"plinth experiment: {error}")
        return EXIT_USAGE
    guards = Guards(spec, {spec.treatments[0].name: PrometheusSource(args.prometheus)}, versions)
    store = PredictionStore(store_uri, feedback_max_age_s())
    print(f"experiment {spec.name}: " + ", ".join(f"{name}=v{version}" for name, version in versions.items()))

    def say(line: str) -> None:
        LOOKS.labels(spec.name).inc()
        print(line, flush=True)

    try:
        finished = run_experiment(
            spec, store, args.model_name, versions, guards, stop, say, since_ms, decide_on_stop=not args.keep_running
        )
    except Interrupted as error:
        print(f"plinth experiment: {error}: nothing recorded; a loop restarted with --since {args.since:g} resumes it")
        return EXIT_INTERRUPTED
    decision = finished.decision
    history, duration, measure = finished.history, finished.duration_s, finished.measure
    run_id = log_experiment(client, tracking_uri, spec, versions, decision, history, duration, measure, since_ms)
    DECIDED.labels(spec.name).set(1)
    print(f"DECISION: {decision.outcome}" + (f" ({decision.winner})" if decision.winner else ""))
    print(f"  {decision.reason}")
    print(f"  recorded: MLflow experiment plinth-experiments, run {run_id}", flush=True)
    if args.keep_running:
        stop.wait()
    return EXIT_DECIDED
