"""`make rollout` (`python -m serving.embedded.rollout`): one canary rollout on this machine.

It rolls `challenger` out against `champion` on local processes behind a weighted router and exits: 0 promoted,
3 rolled back, 2 bad arguments or spec, or a rollout refused before it started (a version that is not there, a
canary that solves another task than the stable or whose files fail their signature check, no traffic that
fits the model). SIGINT/SIGTERM stop the analysis, which then rolls back, so an interrupted local rollout
still ends with all traffic on the stable.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.common import signing
from components.common.redact import redact
from components.common.state import plinth_home
from components.common.tracking import CHALLENGER, CHAMPION, PROMOTED
from serving.embedded.local import METRICS_CHOICES, LocalStack
from serving.embedded.traffic import TrafficGenerator
from serving.rollout.cli import EXIT_USAGE, add_common_arguments, configure_logging, prepare
from serving.rollout.core.controller import Controller, Outcome
from serving.rollout.core.record import RolloutRecorder
from serving.rollout.core.spec import load_spec
from serving.rollout.core.telemetry import serve_metrics
from serving.rollout.edges.inspect_model import ModelFacts, inspect_version, task_mismatch, verify_version
from serving.rollout.edges.pre_traffic import reference_rows
from serving.rollout.edges.sample_rows import Row, TrafficError, traffic_rows

LOG = logging.getLogger("plinth.rollout")
EXIT_PROMOTED, EXIT_ROLLED_BACK = 0, 3


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of a local rollout."""
    parser = argparse.ArgumentParser(prog="python -m serving.embedded.rollout", description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--stable-version", help="version the stable serves (default: alias champion)")
    parser.add_argument("--canary-version", help="version to roll out (default: alias challenger)")
    parser.add_argument("--router-port", type=int, default=8080, help="port of the weighted router")
    parser.add_argument(
        "--metrics",
        choices=METRICS_CHOICES,
        default="auto",
        help="local Prometheus (auto: when installed) or the services' /metrics directly",
    )
    parser.add_argument(
        "--traffic",
        type=float,
        default=0.0,
        help="send this many synthetic requests/s through the router, rows that fit the stable model",
    )
    parser.add_argument(
        "--traffic-source",
        help="rows for --traffic: a CSV/Parquet path, sklearn:<name> or synthetic:churn (default: the data the "
        "stable was trained on where its run recorded it, else rows drawn from its reference profile or input example)",
    )
    parser.add_argument("--traffic-target", help="column of --traffic-source to drop (the target)")
    parser.add_argument("--workdir", type=Path, help="logs and Prometheus data (default: $PLINTH_HOME/rollout)")
    return parser


class Refused(Exception):
    """The rollout cannot start; the message is the one line the user reads."""


def resolve_version(client: MlflowClient, model_name: str, given: str | None, alias: str) -> str:
    """Return `given` (checked to exist), or the version `alias` points to.

    Raises:
        Refused: the model, the alias or the version is not in the registry.
    """
    try:
        if given:
            return str(client.get_model_version(model_name, given).version)
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException as error:
        what = f"version {given}" if given else f"alias {alias}"
        raise Refused(f"no {what} of {model_name}: {str(error).splitlines()[0]}") from error


def read_versions(args: argparse.Namespace, client: MlflowClient, tracking_uri: str) -> tuple[ModelFacts, ModelFacts]:
    """Return what the registry says about the stable and the canary version.

    Raises:
        Refused: a version is missing, the canary solves another task than the stable, or its files fail
            their signature check (PLINTH_VERIFY_KEY, PLINTH_REQUIRE_SIGNATURE: as the model service reads them).
    """
    try:
        versions = [
            resolve_version(client, args.model_name, given, alias)
            for given, alias in ((args.stable_version, CHAMPION), (args.canary_version, CHALLENGER))
        ]
    except Refused as error:
        raise Refused(f"{error} (registry {redact(tracking_uri)})") from error
    verify_canary(client, tracking_uri, args.model_name, versions[1])
    stable, canary = (inspect_version(client, tracking_uri, args.model_name, version) for version in versions)
    mismatch = task_mismatch(stable, canary)
    if mismatch:
        raise Refused(mismatch)
    return stable, canary


def verify_canary(client: MlflowClient, tracking_uri: str, model_name: str, version: str) -> None:
    """Check the canary's files against their signature as its model service will, before anything reads them.

    Raises:
        Refused: the files fail the check, are unsigned where PLINTH_REQUIRE_SIGNATURE=true, or cannot be fetched.
    """
    try:
        key, required = signing.verify_key(tracking_uri), signing.signature_required()
        verdict = verify_version(client, tracking_uri, model_name, version, key, required)
    except signing.SigningError as error:
        raise Refused(str(error)) from error
    except (MlflowException, OSError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise Refused(f"canary {model_name} v{version} not verified: {first}") from error
    if verdict.refused:
        raise Refused(f"canary {verdict.message}")
    if verdict.result == signing.UNVERIFIED:
        LOG.warning("canary %s", verdict.message)


def traffic(args: argparse.Namespace, stable: ModelFacts) -> list[Row]:
    """Return the rows that `--traffic` sends (none without it).

    Raises:
        Refused: no rows that fit the stable model can be made.
    """
    if not args.traffic:
        return []
    try:
        rows, origin = traffic_rows(stable, args.traffic_source, args.traffic_target)
    except (TrafficError, OSError, ValueError) as error:
        raise Refused(f"no traffic for {args.model_name} v{stable.version}: {error}") from error
    LOG.info("traffic: %g requests/s, %s", args.traffic, origin)
    return rows


def run_local(
    args: argparse.Namespace,
    client: MlflowClient,
    tracking_uri: str,
    stop: threading.Event,
    stable: ModelFacts,
    canary: ModelFacts,
) -> Outcome:
    """Start stable, canary, router and metrics locally, run the rollout, stop everything."""
    spec = load_spec(args.spec)
    rows = traffic(args, stable)
    workdir = args.workdir or plinth_home() / "rollout"
    with LocalStack(args.model_name, tracking_uri, workdir, args.metrics, args.router_port) as stack:
        stack.start(stable.version)
        stack.deploy_canary(canary.version)
        LOG.info("router on %s (stable v%s, canary v%s)", stack.url, stable.version, canary.version)
        generator = TrafficGenerator(stack.url, rows, args.traffic).start() if rows else None
        try:
            recorder = RolloutRecorder(client, args.model_name, canary.version, args.environment)
            reference = reference_rows(canary)
            controller = Controller(
                spec,
                stack.source,
                stack,
                recorder,
                args.model_name,
                stop,
                canary_has_profile=canary.has_profile,
                pre_traffic=lambda: stack.check_canary(reference),
            )
            return controller.run(stable.version)
        finally:
            if generator:
                generator.stop()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run one rollout and return the exit status."""
    args = build_parser().parse_args(argv)
    configure_logging()
    prepared = prepare(args)
    if prepared is None:
        return EXIT_USAGE
    client, tracking_uri, stop = prepared
    try:
        stable, canary = read_versions(args, client, tracking_uri)
        serve_metrics(args.metrics_port)
        outcome = run_local(args, client, tracking_uri, stop, stable, canary)
    except Refused as error:
        print(f"plinth rollout: {error}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_PROMOTED if outcome.status == PROMOTED else EXIT_ROLLED_BACK


if __name__ == "__main__":
    sys.exit(main())
