"""The `shadow-churn` check: the share of paired rows the canary answers differently, against a budget.

In the shadow phase the stable and the canary answer the same rows (`paired.py`). A sound retrained model
changes some answers; `maxChurn` is how many a rollout accepts. The churn share is judged with the same
anytime-valid confidence sequence as the other checks (`sequential.py`, normal mixture, Jeffreys-shrunk
variance), so looking every interval does not inflate the chance of refusing a canary within budget:

- **fail** (a proven regression: the rollout rolls back at once) when the whole interval lies above `maxChurn`;
- **pass** when it lies wholly below;
- **pending** (holds the phase, no failure counted) while it still straddles the budget.

After the shadow phase nothing is mirrored, so nothing is paired: the check is not applicable there, and on an
edge that pairs nothing. In a cluster (a Gateway API mirror discards the canary's answers) the pairs are joined
from the prediction store by the gateway's `x-request-id` (`joined.py`). Its detail names the churn per
slice of the features `shadow.slices` lists and, where labels came back for paired rows, McNemar's exact test
of who was right (reported, not judged: a fixed-sample p-value peeked at every interval is not a decision).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from scipy.stats import binomtest

from serving.rollout.core.paired import CANARY_ONLY, STABLE_ONLY, PairCounts
from serving.rollout.core.results import FAIL, NOT_APPLICABLE, PASS, PENDING, CheckResult
from serving.rollout.core.sequential import BETTER, CONTINUE, REGRESSION, SequentialResult, decide, mixture_half_width

if TYPE_CHECKING:
    from serving.rollout.core.spec import Check

# Without `alpha` / `minEffect` in the spec: a 5 % chance of refusing a canary within budget, and the boundary
# tightest for an excess of two points over it.
DEFAULT_ALPHA, DEFAULT_MIN_EFFECT = 0.05, 0.02


def churn_evidence(churned: float, pairs: float, budget: float, alpha: float, min_effect: float) -> SequentialResult:
    """Return the confidence sequence of `budget - churn` (above 0: within budget), from cumulative counts.

    Both versions answered every paired row, so each side's sample size is the number of pairs.
    """
    if not pairs > 0:
        return SequentialResult(CONTINUE, math.nan, math.inf, 0.0, 0.0, (-math.inf, math.inf), alpha, min_effect)
    shrunk = (churned + 0.5) / (pairs + 1.0)
    width = float(mixture_half_width(shrunk * (1 - shrunk) / pairs, alpha, min_effect))
    margin = budget - churned / pairs
    decision = str(decide(margin, width, min_effect))
    return SequentialResult(decision, margin, width, pairs, pairs, (margin - width, margin + width), alpha, min_effect)


def by_slice(counts: PairCounts, features: Sequence[str]) -> str:
    """Return the churn of each value of the named features, e.g. "contract_type: monthly 5.0 % of 200"."""
    parts = []
    for feature in features:
        cells = sorted((value, n, c) for (name, value), (n, c) in counts.slices.items() if name == feature and n)
        shown = ", ".join(f"{value} {c / n:.1%} of {n}" for value, n, c in cells) or "no paired rows"
        parts.append(f"{feature}: {shown}")
    return "; ".join(parts)


def mcnemar(counts: PairCounts) -> str:
    """Return McNemar's exact test on labelled pairs ("" without discordant ones): is the canary right less often?"""
    canary, stable = counts.labelled.get(CANARY_ONLY, 0), counts.labelled.get(STABLE_ONLY, 0)
    if not canary + stable:
        return ""
    p_value = binomtest(canary, canary + stable, 0.5, alternative="less").pvalue
    labelled = sum(counts.labelled.values())
    return (
        f"McNemar on {labelled} labelled pairs: only the canary right {canary}, only the stable {stable} "
        f"(one-sided p {p_value:.3g})"
    )


def check_churn(check: Check, pairs: PairCounts | None, shadow: bool, slices: Sequence[str] = ()) -> CheckResult:
    """Judge the rollout's paired rows against `maxChurn` (see the module docstring)."""
    if not shadow:
        detail = "not applicable after the shadow phase: only mirrored requests are answered by both versions"
        return CheckResult(check.name, NOT_APPLICABLE, math.nan, detail)
    if pairs is None:
        detail = (
            "not applicable: no paired answers for these versions (a cluster pairs them from the prediction "
            "store by x-request-id: no live-quality exporter, or no request carried one)"
        )
        return CheckResult(check.name, NOT_APPLICABLE, math.nan, detail)
    assert check.max_churn is not None
    needed = check.min_predictions or 1
    lost = sum(pairs.unpaired.values())
    unpaired = f", {lost} unpaired {dict(sorted(pairs.unpaired.items()))}" if lost else ""
    if pairs.pairs < needed:
        detail = f"{pairs.pairs} paired rows so far{unpaired}, judging from {needed}"
        return CheckResult(check.name, PENDING, float(pairs.pairs), detail)
    alpha = check.alpha if check.alpha is not None else DEFAULT_ALPHA
    effect = check.min_effect if check.min_effect is not None else DEFAULT_MIN_EFFECT
    found = churn_evidence(pairs.churned, pairs.pairs, check.max_churn, alpha, effect)
    low, high = check.max_churn - found.interval[1], check.max_churn - found.interval[0]
    status = {REGRESSION: FAIL, BETTER: PASS}.get(found.decision, PENDING)
    verdict = {FAIL: "above", PASS: "below"}.get(status, "not yet settled against")
    detail = (
        f"label churn {pairs.churn:.2%} of {pairs.pairs} paired rows in [{low:.2%}, {high:.2%}] "
        f"(alpha {alpha:g}), {verdict} maxChurn {check.max_churn:.2%}{unpaired}"
    )
    extra = [part for part in (by_slice(pairs, slices), mcnemar(pairs)) if part]
    detail = "; ".join([detail, *extra])
    compared = f"maxChurn {check.max_churn:g} - label churn"
    return CheckResult(check.name, status, pairs.churn, detail, found, compared)
