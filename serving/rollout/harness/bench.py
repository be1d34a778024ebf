"""`python -m serving.rollout.harness.bench`: how fast a bad canary is caught, and what it costs the clients.

For each bad kind (erroring, slow, garbage-predicting) a canary goes through the same local stack and
analysis under steady traffic; the benchmark measures, from the client side, the time from the canary's
first request to weight 0 and the share of all requests in that window that failed. Beside each result is
what Flagger's documented defaults would need before rolling back (interval 1m x threshold 5).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from components.common.tracking import CHAMPION, connect
from serving.rollout.core.controller import Controller
from serving.rollout.core.observe import CANARY
from serving.rollout.core.record import RolloutRecorder
from serving.rollout.core.spec import AnalysisSpec, load_spec
from serving.rollout.harness.local import METRICS_CHOICES, LocalStack
from serving.rollout.harness.measure import Exposure, exposure
from serving.rollout.harness.services import Chaos
from serving.rollout.harness.traffic import TrafficGenerator
from serving.rollout.harness.train_drill import held_out_instances, register_drill_model

BENCH_SPEC = Path(__file__).parents[1] / "analysis-bench.yaml"
RESULTS = Path(__file__).with_name("bench-results.md")
MODEL = "plinth-bench"
FLAGGER_INTERVAL_S, FLAGGER_THRESHOLD = 60, 5
TARGET_SECONDS, TARGET_FAILED = 30.0, 0.02


@dataclass(frozen=True)
class Case:
    """One kind of bad canary."""

    name: str
    garbage: bool = False
    chaos: Chaos = field(default_factory=Chaos)


@dataclass(frozen=True)
class Row:
    """One case's result."""

    case: Case
    status: str
    reason: str
    window: Exposure | None
    canary_5xx: int


CASES = (
    Case("errors (30% of requests answer 500)", chaos=Chaos(error_rate=0.3)),
    Case("errors (every request answers 500)", chaos=Chaos(error_rate=1.0)),
    Case("latency (+800 ms per request)", chaos=Chaos(latency_ms=800)),
    Case("garbage (shuffled labels, all 200 OK)", garbage=True),
)


def canary_errors(stack: LocalStack) -> int:
    """Return how many 5xx answers the canary has given through the router so far."""
    assert stack.router is not None
    return sum(n for code, n in stack.router.stats.answers[CANARY].items() if code >= 500)


def run_case(
    stack: LocalStack, traffic: TrafficGenerator, spec: AnalysisSpec, case: Case, version: str, tracking_uri: str
) -> Row:
    """Roll one bad canary out and measure its exposure."""
    stack.deploy_canary(version, case.chaos)
    since, errors_before = time.time(), canary_errors(stack)
    recorder = RolloutRecorder(connect(tracking_uri), MODEL, version, "bench")
    outcome = Controller(spec, stack.source, stack, recorder, MODEL).run()
    assert stack.router is not None
    window = exposure(stack.router.stats, traffic.log, since)
    return Row(case, outcome.status, outcome.reason, window, canary_errors(stack) - errors_before)


def render(spec_path: Path, spec: AnalysisSpec, rate: float, rows: list[Row], metrics: str) -> str:
    """Return the results as a Markdown table."""
    flagger = FLAGGER_INTERVAL_S * FLAGGER_THRESHOLD
    limits = ", ".join(f"{c.name} {c.failure_limit}" for c in spec.enabled_checks)
    lines = [
        f"Run {datetime.now(UTC).isoformat(timespec='seconds')} on a shared 2-core machine: spec "
        f"`{spec_path.name}` (steps {list(spec.steps)}, interval {spec.interval:g}s, failure limits {limits}), "
        f"{rate:g} requests/s of held-out rows, metrics from {metrics}. Target: <= {TARGET_SECONDS:g}s and "
        f"< {TARGET_FAILED:.0%} failed requests. The router retries a canary 5xx once on the stable (like a mesh "
        "`retryOn: 5xx` policy); the last column is what clients would have seen fail without that retry.",
        "",
        "| bad canary | outcome | first canary request -> weight 0 | failed requests (clients) | "
        "Flagger defaults (1m x 5) | canary 5xx answers (no retry) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        window = row.window
        took = f"{window.seconds:.1f} s" if window else "n/a"
        share = f"{window.failed_share:.2%} ({window.failed}/{window.requests})" if window else "n/a"
        raw = f"{row.canary_5xx / window.requests:.2%} ({row.canary_5xx}/{window.requests})" if window else "n/a"
        check = row.reason.split(" failed")[0]
        lines.append(f"| {row.case.name} | {row.status} by {check} | {took} | {share} | >= {flagger} s | {raw} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run every case once and write the table to bench-results.md (and stdout)."""
    parser = argparse.ArgumentParser(prog="python -m serving.rollout.harness.bench", description=__doc__)
    parser.add_argument("--spec", type=Path, default=BENCH_SPEC)
    parser.add_argument("--rate", type=float, default=100.0, help="synthetic requests per second")
    parser.add_argument("--metrics", choices=METRICS_CHOICES, default="auto")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    spec = load_spec(args.spec)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="plinth-bench-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        champion = register_drill_model(uri, MODEL, seed=5, train_fraction=0.3, alias=CHAMPION)
        good = register_drill_model(uri, MODEL, seed=5)
        garbage = register_drill_model(uri, MODEL, seed=5, shuffle_labels=True)
        with LocalStack(MODEL, uri, Path(tmp) / "stack", args.metrics) as stack:
            stack.start(champion)
            metrics = "a local Prometheus (500 ms scrapes)" if stack.prometheus else "/metrics read directly"
            traffic = TrafficGenerator(stack.url, held_out_instances(5), args.rate).start()
            try:
                for case in CASES:
                    version = garbage if case.garbage else good
                    rows.append(run_case(stack, traffic, spec, case, version, uri))
            finally:
                traffic.stop()
    table = render(args.spec, spec, args.rate, rows, metrics)
    args.output.write_text(table + "\n")
    print(table)
    met = all(r.window and r.window.seconds <= TARGET_SECONDS and r.window.failed_share < TARGET_FAILED for r in rows)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
