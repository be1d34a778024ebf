"""`make ab` (`python -m serving.experiments.local`): a two-variant experiment on this machine, to a decision.

It resolves each variant's version in `$PLINTH_HOME`'s registry (the shipped spec: `champion` against
`challenger`; a fresh home gets both as drill models, as `make rollout`'s tests make them), serves each
variant as its own `bentoml serve` process, puts the router in experiment mode in front of them, and lets
simulated users with sticky `x-user-id` keys send requests and post feedback in which the last variant is
better by `--lift`. It looks every interval until a decision, prints each look and a summary, and records
the experiment in MLflow (`plinth-experiments`) with its plot. Exit 0 with a decision, 2 when refused.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from components.common.state import local_tracking_uri, plinth_home
from components.common.tracking import CHALLENGER, CHAMPION, connect
from serving.embedded.services import ModelProcess, prediction_store_of
from serving.embedded.train_drill import register_drill_model
from serving.experiments.assign import Assigner
from serving.experiments.decide import GUARD, WINNER
from serving.experiments.guards import Guards
from serving.experiments.report import log_experiment
from serving.experiments.run import Finished, Refused, resolve_versions, run_experiment
from serving.experiments.spec import ExperimentSpec, Variant, load_experiment
from serving.experiments.users import Seen, Users
from serving.model_service.clients import ENV_FEEDBACK_TOKENS, ENV_FEEDBACK_TOKENS_FILE
from serving.model_service.settings import ENV_FEEDBACK_BURST, ENV_FEEDBACK_RATE, feedback_max_age_s
from serving.model_service.store import PredictionStore
from serving.rollout.cli import configure_logging
from serving.rollout.core.observe import CANARY, STABLE
from serving.rollout.core.spec import SpecError
from serving.rollout.edges.inspect_model import inspect_version
from serving.rollout.edges.router import WeightedRouter
from serving.rollout.edges.sample_rows import TrafficError, traffic_rows
from serving.rollout.edges.scrape_metrics import ScrapeSource

LOG = logging.getLogger("plinth.experiments")
SPEC = Path(__file__).resolve().parent / "ab-local.yaml"
EXIT_DECIDED, EXIT_USAGE = 0, 2
# A drill champion on 30 % of the rows and a challenger on all of them, when the home has neither.
DRILL_FRACTIONS = {CHAMPION: 0.3, CHALLENGER: 1.0}


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `make ab`."""
    parser = argparse.ArgumentParser(prog="python -m serving.experiments.local", description=__doc__.split("\n")[0])
    parser.add_argument("--spec", type=Path, default=SPEC, help="experiment spec (default: ab-local.yaml)")
    parser.add_argument(
        "--model-name", default="plinth-classifier", help="registered model (default plinth-classifier)"
    )
    parser.add_argument("--users", type=int, default=200, help="simulated users, each with a sticky key")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second, each followed by feedback")
    parser.add_argument("--base", type=float, default=0.7, help="share of good outcomes of the other variants")
    parser.add_argument("--lift", type=float, default=0.15, help="how much better the last variant's outcomes are")
    parser.add_argument("--seed", type=int, default=0, help="seed of the users' choices and outcomes")
    parser.add_argument("--router-port", type=int, default=0, help="port of the router (default: a free one)")
    parser.add_argument("--workdir", type=Path, help="logs and the prediction store (default: $PLINTH_HOME/ab)")
    return parser


def drill(uri: str, model: str) -> Callable[[Variant], str | None]:
    """Return what supplies a missing champion or challenger: a drill model, registered under its alias."""

    def train(variant: Variant) -> str | None:
        fraction = DRILL_FRACTIONS.get(str(variant.alias))
        if fraction is None:
            return None
        version = register_drill_model(uri, model, seed=21, train_fraction=fraction, alias=variant.alias)
        print(f"trained {variant.alias} v{version} (drill model, {fraction:.0%} of the rows)")
        return version

    return train


def rates(spec: ExperimentSpec, base: float, lift: float) -> dict[str, float]:
    """Return each variant's share of good outcomes: `base`, and `base + lift` for the last variant."""
    if not 0 <= base <= 1 or not 0 <= base + lift <= 1:
        raise Refused(f"--base {base} and --lift {lift}: shares must stay between 0 and 1")
    return {v.name: base + (lift if v is spec.variants[-1] else 0.0) for v in spec.variants}


def summary(spec: ExperimentSpec, finished: Finished, seen: Seen, no_key: int, run_id: str) -> list[str]:
    """Return the lines printed when the experiment has decided."""
    decision = finished.decision
    heads = {WINNER: f"winner {decision.winner}", GUARD: f"stopped by guard, control {decision.winner} kept"}
    lines = [f"DECISION: {heads.get(decision.outcome, decision.outcome)}"]
    lines.append(f"  {decision.reason}")
    for comparison in decision.comparisons:
        low, high = comparison.result.interval
        lines.append(
            f"  effect {comparison.treatment} - {spec.control}: {comparison.effect:+.3f} {finished.measure}, "
            f"interval [{low:+.3f}, {high:+.3f}], samples {comparison.tally.n} vs {comparison.control.n}"
        )
    lines.append(
        f"  duration {finished.duration_s:.0f}s; users {len(seen.variants)}, {seen.switched()} met more than one "
        f"variant; requests without a key {no_key}; answers per variant {dict(sorted(seen.answers.items()))}"
    )
    lines.append(f"  recorded: MLflow experiment plinth-experiments, run {run_id} (JSON and PNG under experiment/)")
    return lines


def experiment(args: argparse.Namespace, spec: ExperimentSpec, stop: threading.Event) -> int:
    """Train or reuse the variants, serve them behind the router, run the users and the experiment, record it."""
    uri = local_tracking_uri(plinth_home())
    client = connect(uri)
    versions = resolve_versions(client, args.model_name, spec, drill(uri, args.model_name))
    shares = rates(spec, args.base, args.lift)
    control_facts = inspect_version(client, uri, args.model_name, versions[spec.control])
    try:
        rows, origin = traffic_rows(control_facts)
    except (TrafficError, OSError, ValueError) as error:
        raise Refused(f"no traffic for {args.model_name} v{versions[spec.control]}: {error}") from error
    # The services started here take the simulated users' labels: one fresh token, a rate they never hit.
    token = secrets.token_urlsafe(32)
    os.environ.pop(ENV_FEEDBACK_TOKENS_FILE, None)
    os.environ.update({ENV_FEEDBACK_TOKENS: f"ab-users={token}", ENV_FEEDBACK_RATE: "1000", ENV_FEEDBACK_BURST: "1000"})
    logs = (args.workdir or plinth_home() / "ab") / "logs"
    services = {
        v.name: ModelProcess(f"variant-{v.name}", args.model_name, versions[v.name], uri, logs) for v in spec.variants
    }
    router = None
    try:
        for service in services.values():
            service.start()
        for service in services.values():
            service.wait_ready()
        router = WeightedRouter(services[spec.control].url, port=args.router_port).start()
        urls = {name: service.url for name, service in services.items()}
        router.set_experiment(Assigner.of(spec), urls, spec.header)
        print(
            f"experiment {spec.name}: "
            + ", ".join(f"{v.name}=v{versions[v.name]} ({v.weight}%)" for v in spec.variants)
            + f"; router on {router.url}, users keyed by {spec.header}; traffic {origin}"
        )
        print(
            f"simulated outcomes ({spec.outcome}): "
            + ", ".join(f"{name} {share:.2f}" for name, share in shares.items())
            + f"; alpha {spec.alpha:g}, minEffect {spec.min_effect:g}, maxDuration {spec.max_duration:g}s"
        )
        sources = {t.name: ScrapeSource({STABLE: urls[spec.control], CANARY: urls[t.name]}) for t in spec.treatments}
        guards = Guards(spec, sources, versions)
        store = PredictionStore(prediction_store_of(logs), feedback_max_age_s())
        users = Users(router.url, rows, spec.header, token, spec.outcome, shares, args.users, args.rate, args.seed)
        users.start()
        try:
            finished = run_experiment(spec, store, args.model_name, versions, guards, stop, print)
        finally:
            seen = users.stop()
        run_id = log_experiment(
            client, uri, spec, versions, finished.decision, finished.history, finished.duration_s, finished.measure
        )
        for line in summary(spec, finished, seen, router.stats.no_key, run_id):
            print(line)
        return EXIT_DECIDED
    finally:
        if router is not None:
            router.stop()
        for service in services.values():
            service.stop()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run one experiment and return the exit status."""
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        spec = load_experiment(args.spec)
    except SpecError as error:
        print(f"plinth ab: bad spec {args.spec}: {error}", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    try:
        return experiment(args, spec, stop)
    except Refused as error:
        print(f"plinth ab: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        stop.set()
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
