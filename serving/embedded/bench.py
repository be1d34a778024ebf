"""`python -m serving.embedded.bench`: what a bad canary costs users, what the shadow phase costs a good one.

Each bad kind (every request 500, +800 ms, garbage predictions, the process killed at rollout start) goes
through the same local stack and analysis under steady traffic, with the router's retry-on-stable off
(the Gateway API standard channel has no such retry; `--retry-on-stable` turns it back on). Per case, from
the users' side: requests that failed, requests slowed beyond 2 x the stable's p99 (measured in the same
run, before the cases), and the time from the rollout's start to its rollback. Then a good canary is
promoted twice, side by side: the old path (shadow off) and with the pre-traffic check and shadow phase,
and their ratio is the cost of the shadow phase.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from components.common.tracking import CHAMPION, PROMOTED, ROLLED_BACK, connect
from serving.embedded.local import METRICS_CHOICES, LocalStack
from serving.embedded.measure import Impact, impact, p99
from serving.embedded.services import Chaos
from serving.embedded.traffic import TrafficGenerator
from serving.embedded.train_drill import held_out_instances, register_drill_model
from serving.rollout.core.controller import Controller, Outcome
from serving.rollout.core.record import RolloutRecorder
from serving.rollout.core.spec import AnalysisSpec, ShadowSpec, load_spec
from serving.rollout.edges.inspect_model import inspect_version
from serving.rollout.edges.pre_traffic import ReferenceRows, reference_rows

BENCH_SPEC = Path(__file__).parents[1] / "rollout" / "analysis-bench.yaml"
RESULTS = Path(__file__).with_name("bench-results.md")
MODEL = "plinth-bench"
TARGET_ROLLBACK_S, TARGET_PROMOTION_RATIO, SLOW_FACTOR = 15.0, 1.5, 2.0
# Stable-only traffic before the cases: the p99 that "slowed" is measured against.
BASELINE_S = 15.0


@dataclass(frozen=True)
class Case:
    """One kind of bad canary."""

    name: str
    garbage: bool = False
    killed: bool = False
    chaos: Chaos = field(default_factory=Chaos)


@dataclass(frozen=True)
class Row:
    """One rollout's result as the users saw it."""

    name: str
    outcome: Outcome
    users: Impact

    @property
    def seconds(self) -> float:
        """Return the time from the rollout's start to its decision."""
        return self.outcome.finished - self.outcome.started


CASES = (
    Case("errors (every request answers 500)", chaos=Chaos(error_rate=1.0)),
    Case("latency (+800 ms per request)", chaos=Chaos(latency_ms=800)),
    Case("garbage (shuffled labels, all 200 OK)", garbage=True),
    Case("killed (process killed at rollout start)", killed=True),
)


class Bench:
    """One local stack, steady traffic, and the rollouts measured against it."""

    def __init__(self, stack: LocalStack, traffic: TrafficGenerator, spec: AnalysisSpec, uri: str) -> None:
        self.stack, self.traffic, self.spec, self.uri = stack, traffic, spec, uri
        self.slow_seconds = math.nan
        # The control: what the same measure counts in the baseline window, with no canary at all.
        self.control = Impact(0, 0, 0, 0)

    def reference(self, version: str) -> ReferenceRows:
        """Return the version's reference rows, as the CLI reads them from the registry."""
        return reference_rows(inspect_version(connect(self.uri), self.uri, MODEL, version))

    def measure_baseline(self) -> float:
        """Measure the stable's p99 under the bench traffic; "slowed" is more than SLOW_FACTOR times it."""
        start = time.time()
        time.sleep(BASELINE_S)  # the measurement window itself: traffic runs, nothing else happens
        end = time.time()
        self.slow_seconds = SLOW_FACTOR * p99(self.traffic.log, start, end)
        self.control = impact(self.traffic.log, start, end, self.slow_seconds)
        return self.slow_seconds / SLOW_FACTOR

    def roll_out(self, name: str, version: str, spec: AnalysisSpec, chaos: Chaos, killed: bool = False) -> Row:
        """Deploy one canary, run one rollout with the pre-traffic check, and count what the users saw."""
        reference = self.reference(version)
        canary = self.stack.deploy_canary(version, chaos)
        if killed:
            canary.kill()
        recorder = RolloutRecorder(connect(self.uri), MODEL, version, "bench")
        controller = Controller(
            spec, self.stack.source, self.stack, recorder, MODEL, pre_traffic=lambda: self.stack.check_canary(reference)
        )
        outcome = controller.run(self.stack.stable.version if self.stack.stable else None)
        users = impact(self.traffic.log, outcome.started, outcome.finished, self.slow_seconds)
        return Row(name, outcome, users)


def render(
    spec_path: Path,
    spec: AnalysisSpec,
    rate: float,
    stable_p99: float,
    control: Impact,
    bad: list[Row],
    good: list[Row],
) -> str:
    """Return the results as Markdown; `control` is the baseline window counted the same way, with no canary."""
    limits = ", ".join(f"{c.name} {c.failure_limit}" for c in spec.enabled_checks)
    shadow = spec.shadow
    lines = [
        f"Run {datetime.now(UTC).isoformat(timespec='seconds')} on a shared 2-core machine: spec `{spec_path.name}` "
        f"(pre-traffic check, shadow >= {shadow.duration:g}s on >= {shadow.min_requests} mirrored requests per "
        f"interval, steps {list(spec.steps)}, interval {spec.interval:g}s, failure limits {limits}), {rate:g} "
        f"requests/s of held-out rows through the router, retry-on-stable off. Stable p99 measured over "
        f"{BASELINE_S:g}s before the cases: {stable_p99 * 1000:.1f} ms, so slowed = answered after "
        f"{SLOW_FACTOR * stable_p99 * 1000:.1f} ms. Targets: 0 failed and 0 slowed user requests per bad kind, "
        f"rolled back within {TARGET_ROLLBACK_S:g}s of the rollout's start.",
        "",
        "| bad canary | outcome | rollout start -> rollback | user requests in it | failed | slowed | "
        "answered by the canary |",
        "|---|---|---|---|---|---|---|",
    ]
    lines.append(
        f"| control: no canary (the baseline window) | - | {BASELINE_S:.1f} s | {control.requests} | "
        f"{control.failed} | {control.slowed} | 0 |"
    )
    for row in bad:
        users, reason = row.users, row.outcome.reason
        by = reason.split(":")[0] if reason.startswith("refused") else reason.split(" failed")[0]
        lines.append(
            f"| {row.name} | {row.outcome.status} ({by}) | {row.seconds:.1f} s | {users.requests} | {users.failed} | "
            f"{users.slowed} | {users.canary_answers} |"
        )
    lines += [
        "",
        f"A good canary, promoted twice in the same run (target: with shadow <= {TARGET_PROMOTION_RATIO:g} x without):",
        "",
        "| path | outcome | rollout start -> promotion | failed | slowed |",
        "|---|---|---|---|---|",
    ]
    for row in good:
        lines.append(
            f"| {row.name} | {row.outcome.status} | {row.seconds:.1f} s | {row.users.failed} | {row.users.slowed} |"
        )
    if len(good) == 2 and good[0].outcome.status == PROMOTED:
        lines += ["", f"Promotion time ratio, shadow on / off: {good[1].seconds / good[0].seconds:.2f}"]
    elif len(good) == 2:
        lines += [
            "",
            f"The old path did not promote the good canary ({good[0].outcome.reason}): its first step gets about "
            f"{spec.steps[0] / 100 * rate * spec.interval:g} canary requests per interval, and an interval under "
            f"minRequests ({spec.min_requests}) counts as a failure. The shadow phase fills its intervals with "
            "mirrored requests instead. No ratio: only one path promoted.",
        ]
    return "\n".join(lines)


def met(bad: list[Row], good: list[Row]) -> bool:
    """Return whether every target was met."""
    caught = all(
        row.outcome.status == ROLLED_BACK
        and row.seconds <= TARGET_ROLLBACK_S
        and row.users.failed == 0
        and row.users.slowed == 0
        for row in bad
    )
    old, shadow = good
    if shadow.outcome.status != PROMOTED:
        return False
    # An old path that failed a good canary (too few requests at its first step) sets no bound to beat.
    return caught and (old.outcome.status != PROMOTED or shadow.seconds <= TARGET_PROMOTION_RATIO * old.seconds)


def main(argv: list[str] | None = None) -> int:
    """Run every case once and write the tables to bench-results.md (and stdout)."""
    parser = argparse.ArgumentParser(prog="python -m serving.embedded.bench", description=__doc__)
    parser.add_argument("--spec", type=Path, default=BENCH_SPEC)
    parser.add_argument("--rate", type=float, default=100.0, help="synthetic requests per second")
    parser.add_argument("--metrics", choices=METRICS_CHOICES, default="auto")
    parser.add_argument(
        "--retry-on-stable", action="store_true", help="let the router retry a canary 5xx on the stable"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    spec = load_spec(args.spec)
    old_path = replace(spec, shadow=ShadowSpec(enabled=False))
    bad: list[Row] = []
    good: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="plinth-bench-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        champion = register_drill_model(uri, MODEL, seed=5, train_fraction=0.3, alias=CHAMPION)
        sound = register_drill_model(uri, MODEL, seed=5)
        garbage = register_drill_model(uri, MODEL, seed=5, shuffle_labels=True)
        stack = LocalStack(MODEL, uri, Path(tmp) / "stack", args.metrics, retry_on_stable=args.retry_on_stable)
        with stack:
            stack.start(champion)
            traffic = TrafficGenerator(stack.url, held_out_instances(5), args.rate).start()
            bench = Bench(stack, traffic, spec, uri)
            try:
                stable_p99 = bench.measure_baseline()
                for case in CASES:
                    version = garbage if case.garbage else sound
                    bad.append(bench.roll_out(case.name, version, spec, case.chaos, case.killed))
                good.append(bench.roll_out("old path (shadow off)", sound, old_path, Chaos()))
                good.append(bench.roll_out("pre-traffic check + shadow", sound, spec, Chaos()))
            finally:
                traffic.stop()
    table = render(args.spec, spec, args.rate, stable_p99, bench.control, bad, good)
    args.output.write_text(table + "\n")
    print(table)
    return 0 if met(bad, good) else 1


if __name__ == "__main__":
    sys.exit(main())
