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

PASS, FAIL, NO_DATA = "pass", "fail", "no_data"


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
    """The stable track's last well-sampled signals; at 100 % canary weight the stable gets no traffic."""

    p99_seconds: float = math.nan
    probability_buckets: dict[float, float] = field(default_factory=dict)

    def update(self, stable: TrackSample, min_requests: int) -> None:
        """Keep the stable's signals when the interval had enough of its own traffic."""
        if stable.requests >= min_requests and not math.isnan(stable.p99_seconds):
            self.p99_seconds = stable.p99_seconds
        if bucket_total(stable.probability_buckets) >= min_requests:
            self.probability_buckets = dict(stable.probability_buckets)


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
    return CheckResult(check.name, FAIL, value, f"{value:.4g}s > {check.max_ratio_to_stable} x stable p99 "
                       f"{baseline.p99_seconds:.4g}s")


def check_divergence(check: Check, canary: TrackSample, baseline: Baseline) -> CheckResult:
    """Jensen-Shannon divergence of canary vs stable predicted-probability histograms."""
    assert check.maximum is not None
    value = jensen_shannon(bin_shares(canary.probability_buckets), bin_shares(baseline.probability_buckets))
    return _threshold(check.name, value, value <= check.maximum, f"max {check.maximum}")


def run_check(check: Check, spec: AnalysisSpec, observation: Observation, baseline: Baseline) -> CheckResult:
    """Evaluate one enabled check against the canary's interval."""
    canary = observation.canary
    if observation.error:
        return CheckResult(check.name, NO_DATA, math.nan, f"no values found: {observation.error}")
    if not canary.requests >= spec.min_requests:
        return CheckResult(check.name, NO_DATA, canary.requests,
                           f"{canary.requests:g} canary requests < minRequests {spec.min_requests}")
    if check.name == "success-rate":
        assert check.minimum is not None
        rate = canary.success_rate
        return _threshold(check.name, rate, rate >= check.minimum, f"min {check.minimum}")
    if check.name == "latency-p99":
        return check_latency(check, canary, baseline)
    if check.name == "prediction-divergence":
        return check_divergence(check, canary, baseline)
    assert check.maximum is not None
    drift = canary.input_drift
    return _threshold(check.name, drift, drift <= check.maximum, f"max {check.maximum}")


class Analysis:
    """Failure counts of one rollout; counts never reset within a rollout (as Flagger's failedChecks)."""

    def __init__(self, spec: AnalysisSpec) -> None:
        self.spec = spec
        self.failures = {check.name: 0 for check in spec.enabled_checks}
        self.baseline = Baseline()

    def judge(self, observation: Observation) -> Verdict:
        """Run the checks on one interval and decide."""
        self.baseline.update(observation.stable, self.spec.min_requests)
        results = tuple(run_check(c, self.spec, observation, self.baseline) for c in self.spec.enabled_checks)
        for result in results:
            if result.status != PASS:
                self.failures[result.name] += 1
        over = [c for c in self.spec.enabled_checks if self.failures[c.name] >= c.failure_limit]
        if over:
            worst = next(r for r in results if r.name == over[0].name)
            reason = (f"{over[0].name} failed {self.failures[over[0].name]} time(s) "
                      f"(failureLimit {over[0].failure_limit}): {worst.detail}")
            return Verdict(Action.ROLLBACK, results, reason)
        failing = [r for r in results if r.status != PASS]
        if failing:
            return Verdict(Action.HOLD, results, "; ".join(f"{r.name}: {r.detail}" for r in failing))
        return Verdict(Action.ADVANCE, results, "all checks passed")
