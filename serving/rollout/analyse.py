"""Judge one interval: run every enabled check, count failures, and say advance, hold or roll back.

The lessons of Flagger ("no values found" fails the check) and Argo Rollouts (`isNaN` is a failure, not a
pass) are the rule here: a check passes only on a real number inside its threshold. Too few canary
requests fail every check for that interval, so a canary without traffic can never be promoted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from serving.rollout.histogram import bin_shares, bucket_total, jensen_shannon
from serving.rollout.observe import Observation, TrackSample
from serving.rollout.spec import AnalysisSpec, Check

PASS, FAIL, NO_DATA, PENDING = "pass", "fail", "no_data", "pending"


class Action(Enum):
    """What the controller does after an interval."""

    ADVANCE = "advance"
    HOLD = "hold"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check in one interval."""

    name: str
    status: str
    value: float
    detail: str


@dataclass(frozen=True)
class Verdict:
    """The analysis of one interval."""

    action: Action
    results: tuple[CheckResult, ...]
    reason: str


@dataclass
class Baseline:
    """What the rollout has seen so far: the stable's last p99 and both tracks' predictions, summed.

    At 100 % canary weight the stable gets no traffic, so its last well-sampled p99 stands in. Predictions
    are summed over the rollout because a model's output distribution does not depend on the weight, and a
    Jensen-Shannon estimate from a dozen predictions is mostly sampling noise.
    """

    p99_seconds: float = math.nan
    stable_predictions: dict[float, float] = field(default_factory=dict)
    canary_predictions: dict[float, float] = field(default_factory=dict)

    def update(self, observation: Observation, min_requests: int) -> None:
        """Fold one interval in."""
        stable = observation.stable
        if stable.requests >= min_requests and not math.isnan(stable.p99_seconds):
            self.p99_seconds = stable.p99_seconds
        add(self.stable_predictions, stable.probability_buckets)
        add(self.canary_predictions, observation.canary.probability_buckets)


def add(total: dict[float, float], buckets: dict[float, float]) -> None:
    """Add cumulative `buckets` into `total`, bucket by bucket (NaN counts are skipped)."""
    for bound, count in buckets.items():
        if not math.isnan(count):
            total[bound] = total.get(bound, 0.0) + count


def _threshold(name: str, value: float, ok: bool, bound: str) -> CheckResult:
    """Return pass/fail for a real value, no_data for NaN."""
    if math.isnan(value):
        return CheckResult(name, NO_DATA, value, f"no values found ({bound})")
    return CheckResult(name, PASS if ok else FAIL, value, f"{value:.4g} ({bound})")


def check_latency(check: Check, canary: TrackSample, baseline: Baseline) -> CheckResult:
    """p99 under the absolute bound and, where the stable's p99 is known, under k x stable."""
    assert check.max_seconds is not None
    value = canary.p99_seconds
    result = _threshold(check.name, value, value <= check.max_seconds, f"max {check.max_seconds}s")
    if result.status != PASS or check.max_ratio_to_stable is None or math.isnan(baseline.p99_seconds):
        return result
    limit = check.max_ratio_to_stable * baseline.p99_seconds
    if value <= max(limit, 0.005):
        return result
    return CheckResult(
        check.name,
        FAIL,
        value,
        f"{value:.4g}s > {check.max_ratio_to_stable} x stable p99 {baseline.p99_seconds:.4g}s",
    )


def check_drift(check: Check, canary: TrackSample, baseline: Baseline) -> CheckResult:
    """The canary's input drift gauge, once it has scored `minPredictions` rows (pending until then)."""
    assert check.maximum is not None
    needed = check.min_predictions or 1
    seen = bucket_total(baseline.canary_predictions)
    if seen < needed:
        return CheckResult(check.name, PENDING, seen, f"{seen:g} rows scored so far, judging from {needed}")
    drift = canary.input_drift
    return _threshold(check.name, drift, drift <= check.maximum, f"max {check.maximum}")


def check_divergence(check: Check, baseline: Baseline) -> CheckResult:
    """Jensen-Shannon divergence of the canary's vs the stable's predicted-probability histograms.

    Until both sides hold `minPredictions` the check is pending: the step holds, but no failure is counted
    (the traffic minimum is enforced by every check already; this one only waits for a sample it can judge).
    """
    assert check.maximum is not None
    needed = check.min_predictions or 1
    seen = min(bucket_total(baseline.canary_predictions), bucket_total(baseline.stable_predictions))
    if seen < needed:
        return CheckResult(check.name, PENDING, seen, f"{seen:g} predictions so far, judging from {needed}")
    value = jensen_shannon(bin_shares(baseline.canary_predictions), bin_shares(baseline.stable_predictions))
    return _threshold(check.name, value, value <= check.maximum, f"max {check.maximum}")


def run_check(
    check: Check, spec: AnalysisSpec, observation: Observation, baseline: Baseline, expected_version: str | None
) -> CheckResult:
    """Evaluate one enabled check against the canary's interval."""
    canary = observation.canary
    if observation.error:
        return CheckResult(check.name, NO_DATA, math.nan, f"no values found: {observation.error}")
    if canary.missing:
        return CheckResult(check.name, NO_DATA, math.nan, f"no values found: {canary.missing}")
    if expected_version and canary.model_version and canary.model_version != expected_version:
        return CheckResult(
            check.name,
            NO_DATA,
            math.nan,
            f"canary metrics come from model version {canary.model_version}, not {expected_version}",
        )
    if not canary.requests >= spec.min_requests:
        return CheckResult(
            check.name,
            NO_DATA,
            canary.requests,
            f"{canary.requests:g} canary requests < minRequests {spec.min_requests}",
        )
    if check.name == "success-rate":
        assert check.minimum is not None
        rate = canary.success_rate
        return _threshold(check.name, rate, rate >= check.minimum, f"min {check.minimum}")
    if check.name == "latency-p99":
        return check_latency(check, canary, baseline)
    if check.name == "prediction-divergence":
        return check_divergence(check, baseline)
    return check_drift(check, canary, baseline)


class Analysis:
    """Failure counts of one rollout; counts never reset within a rollout (as Flagger's failedChecks)."""

    def __init__(self, spec: AnalysisSpec, canary_version: str | None = None) -> None:
        self.spec = spec
        self.canary_version = canary_version
        self.failures = {check.name: 0 for check in spec.enabled_checks}
        self.baseline = Baseline()

    def judge(self, observation: Observation) -> Verdict:
        """Run the checks on one interval and decide."""
        self.baseline.update(observation, self.spec.min_requests)
        results = tuple(
            run_check(check, self.spec, observation, self.baseline, self.canary_version)
            for check in self.spec.enabled_checks
        )
        for result in results:
            if result.status in (FAIL, NO_DATA):
                self.failures[result.name] += 1
        over = [c for c in self.spec.enabled_checks if self.failures[c.name] >= c.failure_limit]
        if over:
            worst = next(r for r in results if r.name == over[0].name)
            reason = (
                f"{over[0].name} failed {self.failures[over[0].name]} time(s) "
                f"(failureLimit {over[0].failure_limit}): {worst.detail}"
            )
            return Verdict(Action.ROLLBACK, results, reason)
        failing = [r for r in results if r.status != PASS]
        if failing:
            details = dict.fromkeys(r.detail if r.status == NO_DATA else f"{r.name}: {r.detail}" for r in failing)
            return Verdict(Action.HOLD, results, "; ".join(details))
        return Verdict(Action.ADVANCE, results, "all checks passed")
