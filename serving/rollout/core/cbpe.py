"""The `estimated-accuracy` check: confidence-based performance estimation (CBPE, as NannyML does it).

Labels come late or never; the served probabilities come with every answer. For a *calibrated* classifier the
chance that an answer is right is the probability it gave the label it answered, so the expected accuracy of
a version is the mean of those probabilities: the model service's `plinth_answered_confidence_total` (summed
probability of each answered label) over its answered instances (`plinth_predicted_class_total`). The label
rule is the service's own (the argmax, or the binary decision threshold stored with the model as
`plinth.decision`), so the estimate follows the threshold without the rollout reading any metadata.

The canary's estimated accuracy is compared with the stable's over everything both answered since the rollout
began (the baseline sums the counters), with the anytime-valid comparison of proportions of `sequential.py`
on the expected numbers of right answers: **fail** (rolls back at once) when the canary is proven worse,
**pass** when a drop of `minEffect` is ruled out (or the canary is better), **pending** until then. It
needs calibrated probabilities: an over-confident model estimates itself too well (the gate calibrates the
winner when its calibration error is high). Regressors and classifiers without probabilities export no
confidence: not applicable.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from serving.rollout.core.observe import Predictions
from serving.rollout.core.results import FAIL, NOT_APPLICABLE, PASS, PENDING, CheckResult
from serving.rollout.core.sequential import BETTER, NO_REGRESSION, REGRESSION, compare_proportions

if TYPE_CHECKING:
    from serving.rollout.core.baseline import Baseline
    from serving.rollout.core.spec import Check


def expected_correct(predictions: Predictions) -> tuple[float, float]:
    """Return (expected right answers, answered instances); NaN right answers when the service exports none."""
    return predictions.confidence, sum(predictions.classes.values())


def estimated_accuracy(predictions: Predictions) -> float:
    """Return the CBPE estimate of accuracy (the mean probability of the answered labels), NaN without data."""
    right, answered = expected_correct(predictions)
    return right / answered if answered > 0 and not math.isnan(right) else math.nan


def check_estimated_accuracy(check: Check, baseline: Baseline) -> CheckResult:
    """Judge the canary's estimated accuracy against the stable's (see the module docstring)."""
    (canary, n_canary), (stable, n_stable) = (
        expected_correct(baseline.canary_predictions),
        expected_correct(baseline.stable_predictions),
    )
    if math.isnan(canary) or math.isnan(stable):
        detail = "not applicable: no answered-label probabilities (a regressor, or a classifier without them)"
        return CheckResult(check.name, NOT_APPLICABLE, math.nan, detail)
    needed = check.min_predictions or 1
    if min(n_canary, n_stable) < needed:
        detail = f"{n_canary:g} canary / {n_stable:g} stable answers so far, judging from {needed}"
        return CheckResult(check.name, PENDING, min(n_canary, n_stable), detail)
    assert check.alpha is not None
    assert check.min_effect is not None
    found = compare_proportions(canary, n_canary, stable, n_stable, check.alpha, check.min_effect)
    status = {REGRESSION: FAIL, NO_REGRESSION: PASS, BETTER: PASS}.get(found.decision, PENDING)
    estimates = f"canary {canary / n_canary:.2%}, stable {stable / n_stable:.2%}"
    detail = f"estimated accuracy (CBPE) {estimates}: {found.describe()}"
    return CheckResult(check.name, status, canary / n_canary, detail, found, "estimated accuracy (CBPE)")
