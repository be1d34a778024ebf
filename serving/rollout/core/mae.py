"""A regressor's live quality against the stable's: mean absolute error on labels, anytime-valid.

A classifier's labels are right or wrong, a difference of two shares; a regressor's are absolute errors,
unbounded and in the target's units. This compares the two versions' MAE on every labelled row since the
rollout began, through the same normal-mixture confidence sequence as the other checks (`sequential.py`),
so looking every interval keeps the chance of rolling back a regressor as good as the stable at most alpha.

**Scale.** The difference is taken relative to the stable's MAE, `(MAE_stable - MAE_canary) / MAE_stable`,
so `minEffect` reads as for `maxMaeRatio`: 0.1 is a canary 10 % worse than the stable, whatever the target's
units (a spec cannot state an absolute error that fits every model). Higher is better, as for every check.

**Assumed** (Howard et al. 2021, Waudby-Smith et al. 2021): each version's absolute errors are independent
draws with a finite variance (and a little more: a finite moment above the second), not a known bound.
The variance is estimated as the stream goes, from the running sums of errors and squared errors the
live-quality exporter keeps (`plinth_live_absolute_error`, `plinth_live_squared_error`); the boundary is
the asymptotic confidence sequence with that plug-in variance, and the mixture's spread is `minEffect`
times the stable's MAE so far. Why not a bound from the spec: a regressor's errors have no natural maximum,
and a bounded-variable sequence (Hoeffding, or the betting sequences of Waudby-Smith & Ramdas 2023) is as
wide as the stated bound, which must cover the rare large error. `serving/rollout/tests/test_mae.py` checks
the level on 400 seeded streams of half-normal and heavier-tailed (exponential) errors.
"""

from __future__ import annotations

import math

from serving.rollout.core.observe import LiveQuality
from serving.rollout.core.sequential import CONTINUE, SequentialResult, compare_means


def error_variance(live: LiveQuality) -> float:
    """Return the sample variance of one version's absolute errors from its sums (NaN: not enough)."""
    n, total, squares = live.labelled, live.absolute_error, live.squared_error
    if math.isnan(total) or math.isnan(squares) or not n > 1:
        return math.nan
    return max(squares - total * total / n, 0.0) / (n - 1)


def compare_mae(canary: LiveQuality, stable: LiveQuality, alpha: float, min_effect: float) -> SequentialResult | None:
    """Return the comparison of the canary's MAE with the stable's, relative to the stable's (None: no data).

    None while either version lacks the sums (an exporter from before `plinth_live_squared_error`, or no
    regression label yet): the check's guard (`maxMaeRatio`) alone judges then.
    """
    var_c, var_s = error_variance(canary), error_variance(stable)
    if math.isnan(var_c) or math.isnan(var_s):
        return None
    scale = stable.mae
    if not scale > 0:  # a stable without error: nothing to be relative to
        n = (canary.labelled, stable.labelled)
        return SequentialResult(CONTINUE, math.nan, math.inf, *n, (-math.inf, math.inf), alpha, min_effect)
    return compare_means(
        -canary.mae / scale,
        var_c / scale**2,
        canary.labelled,
        -stable.mae / scale,
        var_s / scale**2,
        stable.labelled,
        alpha,
        min_effect,
    )
