"""Judge one interval: run every enabled check, count failures, and say advance, hold or roll back.

The lessons of Flagger ("no values found" fails the check) and Argo Rollouts (`isNaN` is a failure, not a
pass) are the rule here: a check passes only on a real number inside its threshold. Too few canary
requests fail every check for that interval, so a canary without traffic can never be promoted.

A check with `alpha` and `minEffect` also compares the canary with the stable on everything both answered
since the rollout began (`comparisons.py`); a regression proven there rolls back at once, whatever the
failure limit, and its evidence (bound crossed, interval, sample sizes) travels with the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from serving.rollout.core.baseline import Baseline
from serving.rollout.core.cbpe import check_estimated_accuracy
from serving.rollout.core.churn import check_churn
from serving.rollout.core.comparisons import EVIDENCE, GATES_PROMOTION
from serving.rollout.core.divergence import describe, divergence
from serving.rollout.core.observe import DRIFT_OFF, Observation, TrackSample
from serving.rollout.core.results import FAIL, NO_DATA, NOT_APPLICABLE, PASS, PENDING, CheckResult
from serving.rollout.core.sequential import BETTER, NO_REGRESSION, REGRESSION
from serving.rollout.core.spec import AnalysisSpec, Check


class Action(Enum):
    """What the controller does after an interval."""

    ADVANCE = "advance"
    HOLD = "hold"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class Verdict:
    """The analysis of one interval."""

    action: Action
    results: tuple[CheckResult, ...]
    reason: str


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


def drift_not_applicable(check: Check, canary: TrackSample, has_profile: bool | None) -> CheckResult | None:
    """Return the result for a canary without drift gauges, None when it has them or should have them.

    Not applicable only when the service itself declares drift off (`plinth_model_info{drift="off"}`: it
    serves a model without a reference profile) and the registry does not contradict it. A gauge missing
    for any other reason (drift on, no label, several processes disagreeing, a model whose registered files
    do carry a profile) is no data, which fails like any other missing metric.
    """
    if not math.isnan(canary.input_drift) or canary.drift != DRIFT_OFF:
        return None
    if has_profile:
        detail = "no values found: the canary's model has a reference profile but its service reports drift off"
        return CheckResult(check.name, NO_DATA, math.nan, detail)
    detail = "not applicable: the canary's model has no reference profile, its service scores no input drift"
    return CheckResult(check.name, NOT_APPLICABLE, math.nan, detail)


def check_drift(check: Check, canary: TrackSample, baseline: Baseline, has_profile: bool | None) -> CheckResult:
    """The canary's input drift gauge, once it has scored `minPredictions` rows (pending until then)."""
    assert check.maximum is not None
    not_applicable = drift_not_applicable(check, canary, has_profile)
    if not_applicable is not None:
        return not_applicable
    needed = check.min_predictions or 1
    seen = baseline.canary_predictions.total
    if seen < needed:
        return CheckResult(check.name, PENDING, seen, f"{seen:g} rows scored so far, judging from {needed}")
    drift = canary.input_drift
    return _threshold(check.name, drift, drift <= check.maximum, f"max {check.maximum}")


def check_divergence(check: Check, observation: Observation, baseline: Baseline) -> CheckResult:
    """The largest Jensen-Shannon divergence over the prediction distributions both tracks report.

    Until both sides hold `minPredictions` (of any kind) the check is pending: the step holds, but no
    failure is counted (the traffic minimum is enforced by every check already; this one only waits for a
    sample it can judge). Tracks that serve different tasks share no distribution: no data.
    """
    assert check.maximum is not None
    tasks = (observation.canary.task, observation.stable.task)
    if all(tasks) and tasks[0] != tasks[1]:
        detail = f"no values found: the canary serves a {tasks[0]} model, the stable a {tasks[1]} model"
        return CheckResult(check.name, NO_DATA, math.nan, detail)
    canary, stable = baseline.canary_predictions, baseline.stable_predictions
    needed = check.min_predictions or 1
    seen = min(canary.total, stable.total)
    if seen < needed:
        return CheckResult(check.name, PENDING, seen, f"{seen:g} predictions so far, judging from {needed}")
    found = divergence(canary, stable)
    if math.isnan(found.value):
        detail = (
            f"no values found: no prediction distribution both tracks report "
            f"(canary: {describe(canary)}; stable: {describe(stable)})"
        )
        return CheckResult(check.name, NO_DATA, math.nan, detail)
    status = PASS if found.value <= check.maximum else FAIL
    return CheckResult(
        check.name, status, found.value, f"{found.value:.4g} on the {found.distribution} (max {check.maximum})"
    )


def check_live_quality(check: Check, baseline: Baseline, shadow: bool) -> CheckResult:
    """Canary vs stable quality on ground-truth labels summed over the rollout, by the bound for the task.

    Not applicable in the shadow phase: the canary's mirrored answers reach no client, so no label can ever
    come for them (pending there would hold the phase until the progress deadline).

    Pending until both versions have `minLabelled` labelled rows, including when no label has arrived at all
    (feedback off and feedback not yet in look the same: the Summaries export nothing before a first label).
    Pending holds the step without counting a failure, so a rollout whose labels never come rolls back at
    the progress deadline, as any rollout that stops advancing does. Labels that fit no bound of the spec
    (a regressor's errors under `maxAccuracyDrop` alone) are no data.
    """
    if shadow:
        detail = "not applicable in the shadow phase: mirrored answers reach no client, no label comes for them"
        return CheckResult(check.name, NOT_APPLICABLE, math.nan, detail)
    canary, stable = baseline.canary_live, baseline.stable_live
    needed = check.min_labelled or 1
    counts = [0.0 if math.isnan(live.labelled) else live.labelled for live in (canary, stable)]
    if min(counts) < needed:
        detail = f"{counts[0]:g} canary / {counts[1]:g} stable labelled rows so far, judging from {needed}"
        if max(counts) == 0:
            detail += " (no label yet: feedback off or not in; holds until progressDeadline)"
        return CheckResult(check.name, PENDING, min(counts), detail)
    drop, ratio = check.max_accuracy_drop, check.max_mae_ratio
    if drop is not None and not math.isnan(canary.accuracy) and not math.isnan(stable.accuracy):
        floor = stable.accuracy - drop
        # A canary exactly at the bound passes (0.52 - 0.05 is 0.47000000000000003 in floats).
        ok = canary.accuracy >= floor or math.isclose(canary.accuracy, floor)
        detail = f"canary accuracy {canary.accuracy:.4g}, stable {stable.accuracy:.4g} (max drop {drop:g})"
        return CheckResult(check.name, PASS if ok else FAIL, canary.accuracy, detail)
    if ratio is not None and not math.isnan(canary.mae) and not math.isnan(stable.mae):
        detail = f"canary MAE {canary.mae:.4g}, stable {stable.mae:.4g} (max {ratio:g} x stable)"
        return CheckResult(check.name, PASS if canary.mae <= ratio * stable.mae else FAIL, canary.mae, detail)
    bounds = ", ".join(name for name, bound in (("maxAccuracyDrop", drop), ("maxMaeRatio", ratio)) if bound is not None)
    detail = f"no values found: the labelled rows of both versions fit no bound of this check ({bounds})"
    return CheckResult(check.name, NO_DATA, math.nan, detail)


def with_evidence(check: Check, result: CheckResult, baseline: Baseline) -> CheckResult:
    """Add the check's comparison with the stable to a judged result; a proven regression fails it.

    Only a result that judged a value (pass or fail) is compared: no data and pending stay as they are.
    """
    compare = EVIDENCE.get(check.name)
    if compare is None or not check.sequential or result.status not in (PASS, FAIL):
        return result
    found = compare(check, baseline)
    if found is None:
        return result
    compared, evidence = found
    if evidence.decision == REGRESSION:
        detail = f"canary worse than stable on the {compared}: {evidence.crossed} ({evidence.describe()})"
        return CheckResult(check.name, FAIL, evidence.statistic, detail, evidence, compared)
    detail = f"{result.detail}; {compared} {evidence.describe()}"
    return CheckResult(check.name, result.status, result.value, detail, evidence, compared)


def hold_unproven(check: Check, result: CheckResult) -> CheckResult:
    """From the decisive step on a comparison must have ruled out a regression of minEffect to advance.

    Until it has, the passing result is pending: the step holds, no failure is counted, and a canary that
    never gathers the evidence is rolled back at progressDeadline. This is what makes minEffect the smallest
    regression the check catches: a canary that much worse is promoted with a chance of at most alpha. The
    decisive step is the last below 100 %, where the stable still answers and both sides' counts grow.
    """
    if not check.sequential or check.name not in GATES_PROMOTION or result.status != PASS:
        return result
    evidence = result.evidence
    if evidence is None:
        detail = f"holding before promotion: nothing to compare with the stable yet ({result.detail})"
        return CheckResult(result.name, PENDING, result.value, detail)
    if evidence.decision in (NO_REGRESSION, BETTER):
        return result
    detail = (
        f"holding before promotion until a regression of minEffect {evidence.min_effect:g} is ruled out: "
        f"{result.compared} {evidence.describe()}"
    )
    return CheckResult(result.name, PENDING, result.value, detail, evidence, result.compared)


def run_check(
    check: Check,
    spec: AnalysisSpec,
    observation: Observation,
    baseline: Baseline,
    expected_version: str | None,
    has_profile: bool | None = None,
    min_requests: int | None = None,
    shadow: bool = False,
) -> CheckResult:
    """Evaluate one enabled check against the canary's interval (`min_requests`: the spec's unless given)."""
    canary = observation.canary
    needed = spec.min_requests if min_requests is None else min_requests
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
    if not canary.requests >= needed:
        return CheckResult(
            check.name,
            NO_DATA,
            canary.requests,
            f"{canary.requests:g} canary requests < minRequests {needed}",
        )
    if check.name == "success-rate":
        assert check.minimum is not None
        rate = canary.success_rate
        result = _threshold(check.name, rate, rate >= check.minimum, f"min {check.minimum}")
    elif check.name == "latency-p99":
        result = check_latency(check, canary, baseline)
    elif check.name == "prediction-divergence":
        result = check_divergence(check, observation, baseline)
    elif check.name == "live-quality":
        result = check_live_quality(check, baseline, shadow)
    elif check.name == "shadow-churn":  # carries its own evidence, as does CBPE
        return check_churn(check, observation.pairs, shadow, spec.shadow.slices)
    elif check.name == "estimated-accuracy":
        return check_estimated_accuracy(check, baseline)
    else:
        result = check_drift(check, canary, baseline, has_profile)
    return with_evidence(check, result, baseline)


class Analysis:
    """Failure counts of one rollout; counts never reset within a rollout (as Flagger's failedChecks).

    `canary_has_profile` is what the registry says about the canary's model (None: not known); it only
    decides whether a canary that reports drift off may have its input-drift check not applicable.
    """

    def __init__(
        self, spec: AnalysisSpec, canary_version: str | None = None, canary_has_profile: bool | None = None
    ) -> None:
        self.spec = spec
        self.canary_version = canary_version
        self.canary_has_profile = canary_has_profile
        self.failures = {check.name: 0 for check in spec.enabled_checks}
        self.baseline = Baseline()

    def judge(self, observation: Observation, shadow: bool = False, decisive: bool = False) -> Verdict:
        """Run the checks on one interval and decide; in the shadow phase on `shadow.minRequests` mirrored ones.

        `decisive`: a weight at or past `spec.decisive_step`, where comparisons must have ruled out minEffect.
        """
        needed = self.spec.shadow.min_requests if shadow else self.spec.min_requests
        self.baseline.update(observation, self.spec.min_requests)
        results = tuple(
            run_check(
                check,
                self.spec,
                observation,
                self.baseline,
                self.canary_version,
                self.canary_has_profile,
                needed,
                shadow,
            )
            for check in self.spec.enabled_checks
        )
        if decisive:
            results = tuple(hold_unproven(c, r) for c, r in zip(self.spec.enabled_checks, results, strict=True))
        for result in results:
            if result.status in (FAIL, NO_DATA):
                self.failures[result.name] += 1
        proven = [r for r in results if r.evidence is not None and r.evidence.decision == REGRESSION]
        if proven:
            return Verdict(Action.ROLLBACK, results, f"{proven[0].name}: {proven[0].detail}")
        over = [c for c in self.spec.enabled_checks if self.failures[c.name] >= c.failure_limit]
        if over:
            worst = next(r for r in results if r.name == over[0].name)
            reason = (
                f"{over[0].name} failed {self.failures[over[0].name]} time(s) "
                f"(failureLimit {over[0].failure_limit}): {worst.detail}"
            )
            return Verdict(Action.ROLLBACK, results, reason)
        failing = [r for r in results if r.status not in (PASS, NOT_APPLICABLE)]
        if failing:
            details = dict.fromkeys(r.detail if r.status == NO_DATA else f"{r.name}: {r.detail}" for r in failing)
            return Verdict(Action.HOLD, results, "; ".join(details))
        skipped = [f"{r.name} {r.detail}" for r in results if r.status == NOT_APPLICABLE]
        return Verdict(Action.ADVANCE, results, "; ".join(["all checks passed", *skipped]))
