"""`make bench-decisions`: how often a rule rolls back a sound canary, and how soon it catches a bad one.

Offline and seeded: synthetic request streams at the default spec's traffic drive the real analysis core
(`Analysis.judge` on `Observation`s, interval by interval, through the shadow phase and the weight steps, as
the controller does), for the threshold rule (`analysis-threshold.yaml`, plinth before anytime-valid checks)
and the default spec (`analysis.yaml`) side by side. Each case runs `--runs` rollouts per rule; the streams
are drawn for all rollouts at once (numpy), only the judging is per rollout. An A/B section runs the
experiments' decision core (`sequential.py`, vectorised) against a z-test looked at every interval.

Traffic: twice what the first step needs (2 x minRequests canary requests per interval at the first
weight), Poisson per interval; the canary's share binomial by weight; in the shadow phase it answers a copy of
every request (drawn independently: the noisier case). The stable errs on 0.5 % of requests, answers in a
lognormal time (median 20 ms), predicts a binary classifier's probability histogram and is right on 90 % of
the 50 % of answers that get a label within the interval; the canary differs only as each case says.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import stats

from serving.rollout.core.analyse import Action, Analysis
from serving.rollout.core.histogram import histogram_quantile
from serving.rollout.core.observe import LiveQuality, Observation, Predictions, TrackSample
from serving.rollout.core.sequential import BETTER, REGRESSION, decide, mixture_half_width, proportion_difference
from serving.rollout.core.spec import CHECK_NAMES, AnalysisSpec, load_spec, parse_check

HERE = Path(__file__).parent
BASE_ERROR, BASE_ACCURACY, LABEL_SHARE = 0.005, 0.90, 0.5
LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, math.inf)
LATENCY_P = np.diff(stats.lognorm.cdf(LATENCY_BOUNDS, s=0.5, scale=0.02), prepend=0.0)
PROBABILITY_BOUNDS = (*(round(0.1 * i, 1) for i in range(1, 11)), math.inf)
PROBABILITY_P = np.array([40, 5, 1, 0.5, 0.5, 0.5, 0.5, 1, 5, 46, 0]) / 100.0
# Labels come for half the answers: ruling out a 5-point accuracy drop takes longer than the default 10 minutes
# at this traffic (the stable's labels stop growing at 100 %), so the label cases give both rules 30.
LABEL_DEADLINE = 1800.0
# The live-quality check each rule adds for the label cases (the README's example, and its sequential form).
LIVE_CHECKS = {
    "threshold": {"name": "live-quality", "maxAccuracyDrop": 0.02, "minLabelled": 50, "failureLimit": 2},
    "anytime-valid": {
        "name": "live-quality",
        "maxAccuracyDrop": 0.2,
        "minLabelled": 50,
        "failureLimit": 2,
        "alpha": 0.01,
        "minEffect": 0.05,
    },
}


@dataclass(frozen=True)
class Case:
    """One kind of canary: how much worse than the stable, and whether labels come."""

    name: str
    error: float = 0.0
    accuracy: float = 0.0
    live: bool = False


CASES = (
    Case("identical canary"),
    Case("error rate +0.5 pt", error=0.005),
    Case("error rate +1 pt", error=0.01),
    Case("error rate +2 pt", error=0.02),
    Case("identical canary, labels", live=True),
    Case("accuracy -2 pt", accuracy=0.02, live=True),
    Case("accuracy -5 pt", accuracy=0.05, live=True),
)


@dataclass
class Rollout:
    """One simulated rollout: its phase (-1 shadow, else the step index) and how it ended."""

    analysis: Analysis
    phase: int
    began: int = 0
    status: str = ""
    seconds: float = math.nan
    check: str = ""
    holding: str = ""


def per_interval_rate(spec: AnalysisSpec) -> float:
    """Return the requests per interval: twice the first step's minRequests share of the total."""
    return 2.0 * spec.min_requests / (spec.steps[0] / 100.0)


def draw(rng: np.random.Generator, n: npt.NDArray[np.int64], error: float, accuracy: float, live: bool) -> dict:
    """Draw one interval of one track for every active rollout at once."""
    labelled = rng.binomial(n, LABEL_SHARE) if live else np.zeros_like(n)
    return {
        "n": n,
        "errors": rng.binomial(n, error),
        "latency": np.cumsum(rng.multinomial(n, LATENCY_P), axis=1),
        "probability": np.cumsum(rng.multinomial(n, PROBABILITY_P), axis=1),
        "labelled": labelled,
        "correct": rng.binomial(labelled, accuracy),
        "live": live,
    }


def sample(track: dict, i: int) -> TrackSample:
    """Return rollout i's track as a metrics source reports it."""
    latency = dict(zip(LATENCY_BOUNDS, track["latency"][i].astype(float), strict=True))
    probability = dict(zip(PROBABILITY_BOUNDS, track["probability"][i].astype(float), strict=True))
    negatives = probability[0.5]
    live = LiveQuality(float(track["labelled"][i]), float(track["correct"][i])) if track["live"] else LiveQuality()
    return TrackSample(
        requests=float(track["n"][i]),
        errors=float(track["errors"][i]),
        p99_seconds=histogram_quantile(0.99, latency),
        latency=latency,
        predictions=Predictions(
            classes={"0": negatives, "1": probability[math.inf] - negatives}, probabilities={"1": probability}
        ),
        input_drift=0.05,
        live=live,
    )


def simulate(spec: AnalysisSpec, case: Case, runs: int, seed: int) -> list[Rollout]:
    """Run `runs` rollouts of one canary kind under one spec, as the controller steps them."""
    rng = np.random.default_rng(seed)
    rate, interval = per_interval_rate(spec), spec.interval
    rollouts = [Rollout(Analysis(spec), -1 if spec.shadow.enabled else 0) for _ in range(runs)]
    k = 0
    while active := [r for r in rollouts if not r.status]:
        k += 1
        if k * interval > spec.progress_deadline:
            for rollout in active:
                rollout.status, rollout.seconds = "rolled_back", k * interval
                rollout.check = f"progressDeadline ({rollout.holding or 'no step passed'})"
            break
        total = rng.poisson(rate, len(active))
        shadow = np.array([r.phase < 0 for r in active])
        weight = np.array([0 if r.phase < 0 else spec.steps[r.phase] for r in active]) / 100.0
        canary_n = np.where(shadow, total, rng.binomial(total, weight))
        stable_n = np.where(shadow, total, total - canary_n)
        stable = draw(rng, stable_n, BASE_ERROR, BASE_ACCURACY, case.live)
        canary = draw(rng, canary_n, BASE_ERROR + case.error, BASE_ACCURACY - case.accuracy, case.live)
        for i, rollout in enumerate(active):
            observation = Observation(sample(stable, i), sample(canary, i))
            decisive = rollout.phase >= 0 and spec.steps[rollout.phase] >= spec.decisive_step
            verdict = rollout.analysis.judge(observation, rollout.phase < 0, decisive)
            if verdict.action is Action.ROLLBACK:
                rollout.status, rollout.seconds = "rolled_back", k * interval
                rollout.check = next((n for n in CHECK_NAMES if verdict.reason.startswith(n)), "other")
            elif verdict.action is Action.HOLD:
                rollout.holding = "+".join(
                    r.name for r in verdict.results if r.status not in ("pass", "not_applicable")
                )
            elif verdict.action is Action.ADVANCE:
                if rollout.phase < 0 and (k - rollout.began) * interval < spec.shadow.duration:
                    continue
                rollout.phase, rollout.began = rollout.phase + 1, k
                if rollout.phase == len(spec.steps):
                    rollout.status, rollout.seconds = "promoted", k * interval
    return rollouts


def with_live(spec: AnalysisSpec, rule: str) -> AnalysisSpec:
    """Return the spec with the rule's live-quality check added and LABEL_DEADLINE (the label cases)."""
    checks = (*spec.checks, parse_check(LIVE_CHECKS[rule], "live-quality"))
    return dataclasses.replace(spec, checks=checks, progress_deadline=LABEL_DEADLINE)


def run_case(job: tuple[Case, str, str, int, int]) -> str:
    """Run one case under one rule (a worker process's job) and return its results row."""
    case, rule, path, runs, seed = job
    spec = load_spec(path)
    return row(case, rule, simulate(with_live(spec, rule) if case.live else spec, case, runs, seed))


def wilson(hits: int, n: int) -> tuple[float, float]:
    """Return the 95 % Wilson interval of a rate."""
    result = stats.binomtest(hits, n).proportion_ci(confidence_level=0.95, method="wilson")
    return result.low, result.high


def row(case: Case, rule: str, rollouts: Sequence[Rollout]) -> str:
    """Return one results-table row: rollback rate (95 % CI), median times, what rolled them back."""
    back = [r for r in rollouts if r.status == "rolled_back"]
    low, high = wilson(len(back), len(rollouts))
    median_back = f"{np.median([r.seconds for r in back]):.0f}" if back else "-"
    promoted = [r.seconds for r in rollouts if r.status == "promoted"]
    median_promoted = f"{np.median(promoted):.0f}" if promoted else "-"
    causes: dict[str, int] = {}
    for r in back:
        causes[r.check] = causes.get(r.check, 0) + 1
    by = ", ".join(f"{name} {count}" for name, count in sorted(causes.items(), key=lambda item: -item[1]))
    share = len(back) / len(rollouts)
    return f"| {case.name} | {rule} | {share:.1%} ({low:.1%}-{high:.1%}) | {median_back} | {median_promoted} | {by} |"


def ab_section(rate_per_s: float, runs: int, seed: int, alpha: float, min_effect: float) -> list[str]:
    """A/B: two variants 50/50 for up to 7 days, looked at every 10 minutes: anytime-valid vs repeated z-test."""
    rng = np.random.default_rng(seed)
    look_s, looks, base = 600.0, 7 * 24 * 6, 0.10
    lines = [
        f"A/B at {rate_per_s:.1f} requests/s split 50/50, outcome a conversion (control {base:.0%}), looked at every "
        f"{look_s / 60:.0f} min for at most 7 days; anytime-valid: alpha {alpha}, minEffect {min_effect} (the "
        "experiments' decision: winner, or no difference once the interval sits inside +-minEffect); z-test: "
        "two-sided 5 % at every look, stopping at the first significant one.",
        "",
        "| lift | rule | decided a winner | wrong winner | no difference | median time to decision (h) |",
        "|---|---|---|---|---|---|",
    ]
    for name, lift in (("none (A/A)", 0.0), ("+2 % relative (10.0 -> 10.2 %)", 0.002), ("+2 pt (10 -> 12 %)", 0.02)):
        n = rng.poisson(rate_per_s * look_s / 2, (2, runs, looks)).cumsum(axis=2)
        wins_a = rng.binomial(n[0] - np.pad(n[0], ((0, 0), (1, 0)))[:, :-1], base).cumsum(axis=1)
        wins_b = rng.binomial(n[1] - np.pad(n[1], ((0, 0), (1, 0)))[:, :-1], base + lift).cumsum(axis=1)
        estimate, variance = proportion_difference(wins_b, n[1], wins_a, n[0])
        width = mixture_half_width(variance, alpha, min_effect)
        decisions = decide(estimate, width, min_effect)
        equivalent = (estimate - width > -min_effect) & (estimate + width < min_effect)
        rules = {
            "anytime-valid": (decisions == BETTER, decisions == REGRESSION, equivalent),
            "z-test every look": (
                estimate / np.sqrt(variance) > 1.96,
                estimate / np.sqrt(variance) < -1.96,
                np.zeros_like(equivalent),
            ),
        }
        for rule, (better, worse, same) in rules.items():
            stop = better | worse | same
            first = np.where(stop.any(axis=1), stop.argmax(axis=1), -1)
            hit = np.array([first[r] >= 0 and better[r, first[r]] for r in range(runs)])
            wrong = np.array([first[r] >= 0 and worse[r, first[r]] for r in range(runs)])
            nodiff = np.array([first[r] >= 0 and same[r, first[r]] for r in range(runs)])
            hours = (first[first >= 0] + 1) * look_s / 3600
            median = f"{np.median(hours):.1f}" if hours.size else "-"
            lines.append(
                f"| {name} | {rule} | {hit.mean():.1%} | {wrong.mean():.1%} | {nodiff.mean():.1%} | {median} |"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run every case under both rules and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="simulated rollouts per case and rule")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--spec", default=str(HERE / "analysis.yaml"), help="the anytime-valid rule")
    parser.add_argument("--threshold-spec", default=str(HERE / "analysis-threshold.yaml"), help="today's rule")
    parser.add_argument("--out", default=str(HERE / "bench-decisions-results.md"))
    parser.add_argument("--jobs", type=int, default=min(os.cpu_count() or 1, 4), help="worker processes")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.jobs < 1:
        parser.error(f"{'--runs' if args.runs < 1 else '--jobs'}: must be at least 1")
    rules = {"threshold": load_spec(args.threshold_spec), "anytime-valid": load_spec(args.spec)}
    default = rules["anytime-valid"]
    started, load = time.monotonic(), os.getloadavg()[0]
    paths = {"threshold": args.threshold_spec, "anytime-valid": args.spec}
    jobs = [(case, rule, paths[rule], args.runs, args.seed + n) for n, case in enumerate(CASES) for rule in rules]
    rows = []
    with ProcessPoolExecutor(args.jobs) as pool:  # the cases are independent: one per core
        for line in pool.map(run_case, jobs):
            rows.append(line)
            print(line, flush=True)
    rate = per_interval_rate(default) / default.interval
    alphas = {check.name: check.alpha for check in default.enabled_checks if check.sequential}
    lines = [
        "# Rollout decisions: threshold rule vs anytime-valid checks (`make bench-decisions`)",
        "",
        f"{args.runs} simulated rollouts per case and rule, seed {args.seed}, at {rate:.1f} requests/s "
        f"(steps {list(default.steps)}, interval {default.interval:g}s, minRequests {default.min_requests}, "
        f"progressDeadline {default.progress_deadline:g}s); stable: {BASE_ERROR:.1%} errors, accuracy "
        f"{BASE_ACCURACY:.0%} on {LABEL_SHARE:.0%} of answers labelled. The default spec's comparisons state alpha "
        f"{alphas} (summed: {sum(a for a in alphas.values() if a):g}, the most its sound canaries may be rolled back "
        "by them). Label cases add a live-quality check to each rule (threshold: maxAccuracyDrop 0.02; "
        f"anytime-valid: {LIVE_CHECKS['anytime-valid']}) and a progressDeadline of {LABEL_DEADLINE:g}s.",
        "",
        "| canary | rule | rolled back (95 % CI) | median s to rollback | median s to promotion | rolled back by |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        *ab_section(rate, args.runs, args.seed, alpha=0.05, min_effect=0.005),
        "",
        f"Ran in {time.monotonic() - started:.0f} s: {args.jobs} worker processes on {os.cpu_count()} cores, "
        f"load average {load:.1f} at the start.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
