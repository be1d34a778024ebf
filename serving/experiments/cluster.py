"""`python -m serving.experiments run`: one experiment beside a cluster's serving stack, to a recorded decision.

The chart routes the users (its `experiment.*` values: control on the stable track, treatment on the canary
track); this loop decides. It reads the outcomes from the shared prediction store every pod writes to
(`PLINTH_PREDICTION_STORE`, a `postgresql://` URL), judges the guards on Prometheus (the ServiceMonitor labels
each series with its `track`, so the treatment is the canary to the control's stable, as in a rollout),
and records the experiment in MLflow (`MLFLOW_TRACKING_URI`). The same loop `make ab` runs locally; only the
metrics source differs. Exit 0 with a decision, 2 when refused.
"""

from __future__ import annotations

import argparse
import signal
import threading

from components.common.tracking import connect
from serving.experiments.guards import Guards
from serving.experiments.report import log_experiment
from serving.experiments.run import Refused, resolve_versions, run_experiment
from serving.experiments.spec import load_experiment
from serving.model_service.settings import feedback_max_age_s
from serving.model_service.store import PredictionStore
from serving.rollout.core.spec import SpecError
from serving.rollout.edges.query_prometheus import PrometheusSource

EXIT_DECIDED, EXIT_USAGE = 0, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `run` (each defaults to the variable the chart's pods already carry)."""
    parser.add_argument("--spec", required=True, help="experiment spec (YAML, serving/experiments/README.md)")
    parser.add_argument("--model-name", required=True, help="registered model both tracks serve")
    parser.add_argument("--tracking-uri", required=True, help="MLflow tracking URI (versions, the record)")
    parser.add_argument("--store", required=True, help="the shared prediction store (postgresql:// or SQLite)")
    parser.add_argument("--prometheus", required=True, help="Prometheus HTTP API the guards read (URL)")
    parser.add_argument(
        "--since",
        type=float,
        help="when the experiment began (Unix seconds; default now): a restarted loop counts from there",
    )


def run(args: argparse.Namespace) -> int:
    """Resolve the variants, look until a decision, record it; return the exit status."""
    try:
        spec = load_experiment(args.spec)
    except SpecError as error:
        print(f"plinth experiment: bad spec {args.spec}: {error}")
        return EXIT_USAGE
    if len(spec.treatments) != 1:
        print(
            f"plinth experiment: variants: a cluster runs two (its stable and canary tracks), got {len(spec.variants)}"
        )
        return EXIT_USAGE
    client = connect(args.tracking_uri)
    try:
        versions = resolve_versions(client, args.model_name, spec)
    except Refused as error:
        print(f"plinth experiment: {error}")
        return EXIT_USAGE
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    guards = Guards(spec, {spec.treatments[0].name: PrometheusSource(args.prometheus)}, versions)
    store = PredictionStore(args.store, feedback_max_age_s())
    print(f"experiment {spec.name}: " + ", ".join(f"{name}=v{version}" for name, version in versions.items()))
    since_ms = None if args.since is None else int(args.since * 1000)
    finished = run_experiment(spec, store, args.model_name, versions, guards, stop, print, since_ms)
    run_id = log_experiment(
        client,
        args.tracking_uri,
        spec,
        versions,
        finished.decision,
        finished.history,
        finished.duration_s,
        finished.measure,
    )
    decision = finished.decision
    print(f"DECISION: {decision.outcome}" + (f" ({decision.winner})" if decision.winner else ""))
    print(f"  {decision.reason}")
    print(f"  recorded: MLflow experiment plinth-experiments, run {run_id}")
    return EXIT_DECIDED
