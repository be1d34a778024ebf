"""`python -m serving.rollout`: one rollout, local (processes + router) or in-cluster (HTTPRoute).

Exit status: 0 promoted, 3 rolled back, 2 bad arguments or spec. SIGINT/SIGTERM stop the analysis, which
then rolls back, so an interrupted rollout still ends with all traffic on the stable.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from mlflow import MlflowClient

from components.common.state import local_tracking_uri, plinth_home
from components.common.tracking import CHALLENGER, CHAMPION, connect
from serving.rollout.controller import Controller, Outcome
from serving.rollout.local import METRICS_CHOICES, LocalStack
from serving.rollout.record import PROMOTED, RolloutRecorder
from serving.rollout.spec import SpecError, load_spec
from serving.rollout.telemetry import serve_metrics

LOG = logging.getLogger("plinth.rollout")
DEFAULT_SPEC = Path(__file__).with_name("analysis.yaml")
DEFAULT_MODEL = "plinth-classifier"
EXIT_PROMOTED, EXIT_USAGE, EXIT_ROLLED_BACK = 0, 2, 3


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (the Helm chart uses the cluster flags verbatim)."""
    parser = argparse.ArgumentParser(prog="python -m serving.rollout", description=__doc__)
    parser.add_argument("--mode", choices=("local", "cluster"), default="local")
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="analysis spec YAML")
    parser.add_argument("--model-name", default=os.environ.get("PLINTH_MODEL_NAME", DEFAULT_MODEL))
    parser.add_argument("--environment", default="local", help="names the registry tags (local, staging…)")
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="MLflow tracking/registry URI (default: the local SQLite store)",
    )
    parser.add_argument("--stable-version", help="version the stable serves (default: alias champion)")
    parser.add_argument("--canary-version", help="version to roll out (default: alias challenger)")
    parser.add_argument("--metrics-port", type=int, default=9100, help="controller /metrics port, 0 = off")
    local = parser.add_argument_group("local mode")
    local.add_argument("--router-port", type=int, default=8080, help="port of the weighted router")
    local.add_argument(
        "--metrics",
        choices=METRICS_CHOICES,
        default="auto",
        help="local Prometheus (auto: when installed) or the services' /metrics directly",
    )
    local.add_argument(
        "--traffic",
        type=float,
        default=0.0,
        help="send this many synthetic requests/s (held-out rows) through the router",
    )
    local.add_argument("--workdir", type=Path, help="logs and Prometheus data (default: $PLINTH_HOME/rollout)")
    cluster = parser.add_argument_group("cluster mode")
    cluster.add_argument("--namespace")
    cluster.add_argument("--httproute")
    cluster.add_argument("--stable-service")
    cluster.add_argument("--canary-service")
    cluster.add_argument("--canary-deployment")
    cluster.add_argument("--stable-deployment", help="default: the --stable-service name")
    cluster.add_argument("--prometheus-url")
    return parser


def resolve_version(client: MlflowClient, model_name: str, given: str | None, alias: str) -> str:
    """Return `given`, or the version `alias` points to."""
    if given:
        return given
    return str(client.get_model_version_by_alias(model_name, alias).version)


def run_local(
    args: argparse.Namespace,
    client: MlflowClient,
    tracking_uri: str,
    stop: threading.Event,
    stable: str,
    canary: str,
) -> Outcome:
    """Start stable, canary, router and metrics locally, run the rollout, stop everything."""
    from serving.rollout.traffic import TrafficGenerator
    from serving.rollout.train_drill import held_out_instances

    spec = load_spec(args.spec)
    workdir = args.workdir or plinth_home() / "rollout"
    with LocalStack(args.model_name, tracking_uri, workdir, args.metrics, args.router_port) as stack:
        stack.start(stable)
        stack.deploy_canary(canary)
        LOG.info("router on %s (stable v%s, canary v%s)", stack.url, stable, canary)
        traffic = TrafficGenerator(stack.url, held_out_instances(0), args.traffic) if args.traffic else None
        if traffic:
            traffic.start()
        try:
            recorder = RolloutRecorder(client, args.model_name, canary, args.environment)
            return Controller(spec, stack.source, stack, recorder, args.model_name, stop).run(stable)
        finally:
            if traffic:
                traffic.stop()


def run_cluster(
    args: argparse.Namespace, client: MlflowClient, stop: threading.Event, stable: str, canary: str
) -> Outcome:
    """Run the rollout in-cluster against the HTTPRoute and the Prometheus the chart points at."""
    from kubernetes import config
    from kubernetes.client import ApiClient

    from serving.rollout.kube import ClusterEdge
    from serving.rollout.query_prometheus import PrometheusSource

    spec = load_spec(args.spec)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    edge = ClusterEdge(
        ApiClient(),
        args.namespace,
        args.httproute,
        args.stable_service,
        args.canary_service,
        args.canary_deployment,
        args.stable_deployment or args.stable_service,
    )
    edge.prepare()
    recorder = RolloutRecorder(client, args.model_name, canary, args.environment)
    return Controller(spec, PrometheusSource(args.prometheus_url), edge, recorder, args.model_name, stop).run(stable)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run one rollout and return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    required = (
        "namespace",
        "httproute",
        "stable_service",
        "canary_service",
        "canary_deployment",
        "prometheus_url",
    )
    missing = [f"--{name.replace('_', '-')}" for name in required if args.mode == "cluster" and not getattr(args, name)]
    if missing:
        parser.error(f"--mode cluster needs {', '.join(missing)}")
    try:
        load_spec(args.spec)
    except SpecError as error:
        print(f"plinth rollout: bad spec {args.spec}: {error}", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    tracking_uri = args.tracking_uri or local_tracking_uri()
    client = connect(tracking_uri)
    stable = resolve_version(client, args.model_name, args.stable_version, CHAMPION)
    canary = resolve_version(client, args.model_name, args.canary_version, CHALLENGER)
    serve_metrics(args.metrics_port)
    if args.mode == "cluster":
        outcome = run_cluster(args, client, stop, stable, canary)
    else:
        outcome = run_local(args, client, tracking_uri, stop, stable, canary)
    return EXIT_PROMOTED if outcome.status == PROMOTED else EXIT_ROLLED_BACK
