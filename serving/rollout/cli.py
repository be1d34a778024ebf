"""`python -m serving.rollout --mode cluster`: the chart's rollout controller, the in-cluster reconcile loop.

It reconciles Git's desired version against what the stable serves until SIGTERM, which it answers by
stopping between steps with its record intact (a restart resumes, never rolls back); see core/reconcile.py.
One rollout on this machine (local processes and a router) is `make rollout`: `python -m serving.embedded.rollout`.
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

from components.common import signing
from components.common.state import local_tracking_uri
from components.common.tracking import connect
from serving.rollout.core.spec import SpecError, load_spec
from serving.rollout.core.telemetry import serve_metrics
from serving.rollout.edges.pre_traffic import check_canary

LOG = logging.getLogger("plinth.rollout")
DEFAULT_SPEC = Path(__file__).with_name("analysis.yaml")
DEFAULT_MODEL = "plinth-classifier"
EXIT_USAGE = 2
CLUSTER_FLAGS = (
    "namespace",
    "httproute",
    "stable_service",
    "canary_service",
    "canary_deployment",
    "prometheus_url",
    "state_configmap",
)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every rollout entry point shares: spec, model, environment, registry, metrics port."""
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="analysis spec YAML")
    parser.add_argument("--model-name", default=os.environ.get("PLINTH_MODEL_NAME", DEFAULT_MODEL))
    parser.add_argument("--environment", default="local", help="names the registry tags (local, staging…)")
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="MLflow tracking/registry URI (default: the local SQLite store)",
    )
    parser.add_argument("--metrics-port", type=int, default=9100, help="controller /metrics port, 0 = off")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (the Helm chart uses these flags verbatim)."""
    parser = argparse.ArgumentParser(prog="python -m serving.rollout", description=__doc__)
    parser.add_argument("--mode", choices=("cluster",), default="cluster", help="the one mode: in a cluster")
    add_common_arguments(parser)
    cluster = parser.add_argument_group("cluster")
    cluster.add_argument("--namespace")
    cluster.add_argument("--httproute")
    cluster.add_argument("--stable-service")
    cluster.add_argument("--canary-service")
    cluster.add_argument("--canary-deployment")
    cluster.add_argument("--stable-deployment", help="default: the --stable-service name")
    cluster.add_argument("--prometheus-url")
    cluster.add_argument("--state-configmap", help="the ConfigMap the controller keeps its record in")
    cluster.add_argument("--canary-replicas", type=int, default=1, help="canary pods during an analysis")
    return parser


def configure_logging() -> None:
    """One line per event, timestamped; the HTTP client's per-request lines off."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)


def prepare(args: argparse.Namespace) -> tuple[MlflowClient, str, threading.Event] | None:
    """Check the spec (None, after one line naming the field, when it is bad), connect the registry, catch signals."""
    try:
        load_spec(args.spec)
    except SpecError as error:
        print(f"plinth rollout: bad spec {args.spec}: {error}", file=sys.stderr)
        return None
    tracking_uri = args.tracking_uri or local_tracking_uri()
    return connect(tracking_uri), tracking_uri, stop_on_signals()


def stop_on_signals() -> threading.Event:
    """Return an event that SIGINT and SIGTERM set."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def run_cluster(args: argparse.Namespace, client: MlflowClient, tracking_uri: str, stop: threading.Event) -> None:
    """Reconcile one environment until SIGTERM: the controller Deployment of the chart runs this."""
    from kubernetes import config
    from kubernetes.client import ApiClient

    from serving.rollout.core.reconcile import Reconciler
    from serving.rollout.edges.kube import ClusterEdge
    from serving.rollout.edges.mlflow_registry import MlflowRegistry
    from serving.rollout.edges.query_prometheus import PrometheusSource

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
        args.state_configmap,
        canary_pods=args.canary_replicas,
    )
    try:
        verify_key, required = signing.verify_key(tracking_uri), signing.signature_required()
    except signing.SigningError as error:
        raise SystemExit(f"plinth rollout: {error}") from None
    registry = MlflowRegistry(client, tracking_uri, args.model_name, args.environment, verify_key, required)
    source = PrometheusSource(args.prometheus_url)

    def pre_traffic(version: str) -> str | None:
        return check_canary(edge.canary_url(), registry.reference(version))

    spec = load_spec(args.spec)
    Reconciler(spec, edge, source, registry, args.model_name, args.environment, stop, pre_traffic=pre_traffic).run()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and reconcile until SIGTERM."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging()
    missing = [f"--{name.replace('_', '-')}" for name in CLUSTER_FLAGS if not getattr(args, name)]
    if missing:
        parser.error(f"--mode cluster needs {', '.join(missing)}")
    prepared = prepare(args)
    if prepared is None:
        return EXIT_USAGE
    client, tracking_uri, stop = prepared
    serve_metrics(args.metrics_port)
    run_cluster(args, client, tracking_uri, stop)
    return 0
