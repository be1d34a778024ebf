"""Anytime-valid comparisons of two versions from cumulative counts, for canary checks and A/B experiments.

A rollout looks at its metrics every interval and may stop at any look. A fixed-horizon test (z-test,
Mann-Whitney) run at every look rejects a sound canary far more often than its level says; a confidence
sequence does not: the chance that it ever excludes the true difference, at any look, is at most `alpha`.

The boundary is the two-sided normal-mixture boundary of Howard, Ramdas, McAuliffe and Sekhon (Annals of
Statistics 2021, eq. 14), applied to the difference of two estimates with a plug-in variance (the asymptotic
confidence sequences of Waudby-Smith et al. 2021; the mixture SPRT of Johari et al. in interval form). The
mixture's spread is the smallest effect the check must catch (`min_effect`), which makes the boundary
tightest where such an effect becomes detectable. It is closed-form over numpy, so the same code judges one
rollout and a million simulated ones (`bench_decisions.py`). The README's "Anytime-valid checks" section says
why no library (savvi, confseq, spotify-confidence) is used.

Every function is pure: counts in, a decision and its evidence out. Conditioning on each version's own
request count makes the test indifferent to how traffic is split over time (a canary weight that steps
10 -> 100 %, a daily traffic cycle).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

REGRESSION, NO_REGRESSION, CONTINUE, BETTER = "regression", "no_regression", "continue", "better"
Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SequentialResult:
    """One look at a comparison of version a (the canary, a variant) with version b (the stable, control).

    `statistic` is the estimated difference a - b (of success shares, means, or the most shifted cell of a
    distribution), `bound` the half-width of the confidence sequence around it, `interval` the two ends.
    `decision`: regression (the whole interval is below 0: a is worse), better (above 0), no_regression
    (above -min_effect: a regression as large as min_effect is ruled out), else continue.
    """

    decision: str
    statistic: float
    bound: float
    n_a: float
    n_b: float
    interval: tuple[float, float]
    alpha: float
    min_effect: float

    @property
    def crossed(self) -> str:
        """Return which bound was crossed, in words ("" while the interval still holds 0)."""
        low, high = self.interval
        if self.decision == REGRESSION and high < 0:
            return f"upper bound {high:.4g} < 0"
        if self.decision == REGRESSION:  # a distribution's cell shifted up: two-sided
            return f"lower bound {low:.4g} > 0"
        if self.decision == BETTER:
            return f"lower bound {low:.4g} > 0"
        if self.decision == NO_REGRESSION:
            return f"lower bound {low:.4g} > -minEffect {-self.min_effect:g}"
        return ""

    def describe(self) -> str:
        """Return the evidence as one line: estimate, interval, level and sample sizes."""
        low, high = self.interval
        return (
            f"{self.decision}: difference {self.statistic:+.4g} in [{low:.4g}, {high:.4g}] "
            f"(alpha {self.alpha:g}, minEffect {self.min_effect:g}, n {self.n_a:g} vs {self.n_b:g})"
        )

    def to_record(self) -> dict[str, Any]:
        """Return the evidence as JSON-safe data (for the rollout history)."""
        return {
            "decision": self.decision,
            "crossed": self.crossed,
            "statistic": _finite(self.statistic),
            "bound": _finite(self.bound),
            "interval": [_finite(self.interval[0]), _finite(self.interval[1])],
            "n_a": self.n_a,
            "n_b": self.n_b,
            "alpha": self.alpha,
            "min_effect": self.min_effect,
        }


def _finite(value: float) -> float | None:
    """Return `value`, or None where JSON has no number for it."""
    return value if math.isfinite(value) else None


def mixture_half_width(variance: npt.ArrayLike, alpha: float, min_effect: float) -> Array:
    """Return the half-width of the normal-mixture confidence sequence for an estimate of this variance.

    With prior spread tau = min_effect on the difference, the mixture likelihood ratio stays below 1/alpha
    at every look with probability 1 - alpha under the null, which is |estimate| below this width.
    A zero variance (no data) gives an infinite width.
    """
    var = np.asarray(variance, dtype=np.float64)
    tau2 = min_effect * min_effect
    with np.errstate(divide="ignore", invalid="ignore"):
        width = np.sqrt(var * (var + tau2) / tau2 * (2.0 * math.log(1.0 / alpha) + np.log((var + tau2) / var)))
    return np.where(var > 0, width, np.inf)


def proportion_difference(
    successes_a: npt.ArrayLike, n_a: npt.ArrayLike, successes_b: npt.ArrayLike, n_b: npt.ArrayLike
) -> tuple[Array, Array]:
    """Return the difference of success shares a - b and its variance, elementwise.

    The variance uses shares shrunk by half a success and half a failure (Jeffreys), so 0 errors in 30
    requests is not read as certainty: a rare-event estimate with zero variance would cross any bound.
    """
    sa, na, sb, nb = (np.asarray(x, dtype=np.float64) for x in (successes_a, n_a, successes_b, n_b))
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = np.where((na > 0) & (nb > 0), sa / na - sb / nb, np.nan)
        pa, pb = (sa + 0.5) / (na + 1.0), (sb + 0.5) / (nb + 1.0)
        variance = np.where((na > 0) & (nb > 0), pa * (1 - pa) / na + pb * (1 - pb) / nb, 0.0)
    return estimate, variance


def decide(
    estimate: npt.ArrayLike, half_width: npt.ArrayLike, min_effect: float, tolerance: float = 0.0
) -> npt.NDArray[np.str_]:
    """Return the decision per element for estimates a - b and their confidence-sequence half-widths.

    `tolerance`: a drop the caller accepts, so regression only once the whole interval lies below it.
    """
    est, width = np.asarray(estimate, dtype=np.float64), np.asarray(half_width, dtype=np.float64)
    low, high = est - width, est + width
    with np.errstate(invalid="ignore"):
        return np.select(
            [high < -tolerance, low > 0, low > -min_effect], [REGRESSION, BETTER, NO_REGRESSION], default=CONTINUE
        )


def validate(alpha: float, min_effect: float) -> None:
    """Refuse a level or an effect the boundary cannot use (the spec names the field before this)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    if not min_effect > 0 or not math.isfinite(min_effect):
        raise ValueError(f"min_effect must be a positive number, got {min_effect!r}")


def _result(
    estimate: float,
    variance: float,
    counts: tuple[float, float],
    alpha: float,
    min_effect: float,
    tolerance: float = 0.0,
) -> SequentialResult:
    """Return the result for one estimate of a - b with its variance."""
    validate(alpha, min_effect)
    width = float(mixture_half_width(variance, alpha, min_effect))
    if math.isnan(estimate) or not math.isfinite(width):
        return SequentialResult(CONTINUE, estimate, math.inf, *counts, (-math.inf, math.inf), alpha, min_effect)
    decision = str(decide(estimate, width, min_effect, tolerance))
    return SequentialResult(decision, estimate, width, *counts, (estimate - width, estimate + width), alpha, min_effect)


def compare_proportions(
    successes_a: float,
    n_a: float,
    successes_b: float,
    n_b: float,
    alpha: float,
    min_effect: float,
    tolerance: float = 0.0,
) -> SequentialResult:
    """Compare success shares of a (canary) and b (stable) from counts summed since the rollout began.

    Higher is better: pass successes (non-5xx answers, correct labels, conversions). No data on either side
    gives `continue` with an unbounded interval. `tolerance`: a drop accepted (regression below -tolerance).
    """
    estimate, variance = proportion_difference(successes_a, n_a, successes_b, n_b)
    return _result(float(estimate), float(variance), (float(n_a), float(n_b)), alpha, min_effect, tolerance)


def compare_means(
    mean_a: float,
    variance_a: float,
    n_a: float,
    mean_b: float,
    variance_b: float,
    n_b: float,
    alpha: float,
    min_effect: float,
    tolerance: float = 0.0,
) -> SequentialResult:
    """Compare means of a bounded outcome (a business value, an error) of a and b; higher is better.

    The sample variances (of one observation) come from the caller's running sums; a regressor's error
    compares with the signs flipped (pass -error).
    """
    if n_a > 0 and n_b > 0:
        estimate, variance = mean_a - mean_b, variance_a / n_a + variance_b / n_b
    else:
        estimate, variance = math.nan, 0.0
    return _result(estimate, variance, (float(n_a), float(n_b)), alpha, min_effect, tolerance)


def compare_distributions(
    counts_a: Sequence[float], counts_b: Sequence[float], alpha: float, min_effect: float, tolerance: float = 0.0
) -> SequentialResult:
    """Test whether a's distribution over the same cells (classes, buckets) differs from b's.

    Each cell's share is compared as a proportion at level alpha / cells (Bonferroni keeps the whole test at
    alpha), two-sided: a shift either way is a change of behaviour. The result is the cell whose interval lies
    farthest beyond the tolerance (relative to its width): `regression` when some cell's interval lies wholly
    beyond +-tolerance (the shift a sound new model may show: a retrained model answers somewhat
    differently), `no_regression` when every cell's shift is within min_effect, else `continue`.
    """
    validate(alpha, min_effect)
    a, b = np.asarray(counts_a, dtype=np.float64), np.asarray(counts_b, dtype=np.float64)
    n_a, n_b = float(a.sum()), float(b.sum())
    if a.size < 2 or n_a <= 0 or n_b <= 0:
        return _result(math.nan, 0.0, (n_a, n_b), alpha, min_effect)
    estimate, variance = proportion_difference(a, n_a, b, n_b)
    width = mixture_half_width(variance, alpha / a.size, min_effect)
    excess = np.abs(estimate) - width - tolerance
    cell = int(np.argmax(excess / width))
    est, half = float(estimate[cell]), float(width[cell])
    if excess[cell] > 0:
        decision = REGRESSION
    elif bool(np.all(np.abs(estimate) + width < min_effect)):
        decision = NO_REGRESSION
    else:
        decision = CONTINUE
    return SequentialResult(decision, est, half, n_a, n_b, (est - half, est + half), alpha, min_effect)
