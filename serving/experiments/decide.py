"""The experiment's decision: each treatment against the control, by an anytime-valid sequential test.

The test is the rollout's (`serving.rollout.core.sequential`): a confidence sequence for the difference
treatment - control that may be looked at after every interval without inflating its error. With k
treatments each is tested at alpha / k (Bonferroni), so the chance of naming a false winner stays at most
`alpha` over the whole experiment. Per treatment:

- **better** (the whole interval above 0): the treatment beats the control;
- **worse** (the whole interval below 0): the control beats it;
- **equivalent** (the whole interval inside +-minEffect): no difference as large as `minEffect` is there;
- otherwise undecided, until each variant has `minSamples` outcomes and the interval clears one of those.

The experiment ends with a **winner** (the best treatment found better, else the control once every
treatment is found worse or equivalent with at least one worse), **no detectable difference** (every
treatment equivalent), or **stopped at maxDuration** (some treatment still undecided); a guard that stops a
broken variant ends it at once (`stopped by guard`, the control wins).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from serving.experiments.outcomes import Outcomes, Tally
from serving.experiments.spec import ExperimentSpec
from serving.rollout.core.sequential import (
    BETTER,
    REGRESSION,
    SequentialResult,
    compare_means,
    compare_proportions,
)

WINNER, NO_DIFFERENCE, MAX_DURATION = "winner", "no detectable difference", "stopped at maxDuration"
GUARD = "stopped by guard"
WORSE, EQUIVALENT, UNDECIDED = "worse", "equivalent", "undecided"


@dataclass(frozen=True)
class Comparison:
    """One treatment against the control at one look: its verdict and the test's evidence."""

    treatment: str
    verdict: str
    result: SequentialResult
    effect: float
    control: Tally
    tally: Tally


@dataclass(frozen=True)
class Decision:
    """The experiment's state after one look: final or not, the winner if any, and why."""

    final: bool
    outcome: str
    winner: str | None
    reason: str
    comparisons: tuple[Comparison, ...]


def compare(spec: ExperimentSpec, control: Tally, tally: Tally, outcomes: Outcomes, treatment: str) -> Comparison:
    """Return the treatment's comparison with the control, the effect signed so that > 0 is better."""
    alpha = spec.alpha / len(spec.treatments)
    sign = 1.0 if outcomes.higher_is_better else -1.0
    if outcomes.measure == "accuracy":
        result = compare_proportions(tally.total, tally.n, control.total, control.n, alpha, spec.min_effect)
    else:
        variances = [0.0 if math.isnan(t.variance) else t.variance for t in (tally, control)]
        result = compare_means(
            sign * tally.mean if tally.n else math.nan,
            variances[0],
            tally.n,
            sign * control.mean if control.n else math.nan,
            variances[1],
            control.n,
            alpha,
            spec.min_effect,
        )
    low, high = result.interval
    enough = min(tally.n, control.n) >= spec.min_samples
    if not enough:
        verdict = UNDECIDED
    elif result.decision == BETTER:
        verdict = BETTER
    elif result.decision == REGRESSION:
        verdict = WORSE
    elif -spec.min_effect < low and high < spec.min_effect:
        verdict = EQUIVALENT
    else:
        verdict = UNDECIDED
    return Comparison(treatment, verdict, result, result.statistic, control, tally)


def decide(spec: ExperimentSpec, outcomes: Outcomes, versions: dict[str, str], elapsed_s: float) -> Decision:
    """Return the decision at this look from every variant's outcomes (`versions`: variant name -> version)."""
    control = outcomes.of(versions[spec.control])
    comparisons = tuple(
        compare(spec, control, outcomes.of(versions[t.name]), outcomes, t.name) for t in spec.treatments
    )
    verdicts = [c.verdict for c in comparisons]
    better = [c for c in comparisons if c.verdict == BETTER]
    if better:
        best = max(better, key=lambda c: c.effect)
        reason = f"{best.treatment} beats {spec.control}: {best.result.describe()}"
        return Decision(True, WINNER, best.treatment, reason, comparisons)
    if UNDECIDED not in verdicts:
        if all(v == EQUIVALENT for v in verdicts):
            details = "; ".join(f"{c.treatment}: {c.result.describe()}" for c in comparisons)
            return Decision(True, NO_DIFFERENCE, None, f"no difference as large as minEffect: {details}", comparisons)
        worse = next(c for c in comparisons if c.verdict == WORSE)
        reason = f"{spec.control} beats {worse.treatment}: {worse.result.describe()}"
        return Decision(True, WINNER, spec.control, reason, comparisons)
    if elapsed_s >= spec.max_duration:
        open_ = [c for c in comparisons if c.verdict == UNDECIDED]
        reason = f"undecided after {spec.max_duration:g}s: " + "; ".join(
            f"{c.treatment}: {c.result.describe()}" for c in open_
        )
        return Decision(True, MAX_DURATION, None, reason, comparisons)
    counts = ", ".join(f"{c.treatment} {c.tally.n} vs {spec.control} {c.control.n}" for c in comparisons)
    return Decision(False, UNDECIDED, None, f"continuing: outcomes {counts}", comparisons)
