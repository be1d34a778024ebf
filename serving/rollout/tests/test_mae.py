"""The live-quality check's MAE comparison (`core/mae.py`) on seeded streams of labelled regression errors."""

import math
import re

import numpy as np
import pytest

from serving.rollout.core.analyse import Action, Analysis
from serving.rollout.core.mae import compare_mae, error_variance
from serving.rollout.core.observe import LiveQuality, Observation
from serving.rollout.core.sequential import CONTINUE, REGRESSION
from serving.rollout.core.spec import parse_spec
from serving.rollout.tests.test_sequential_checks import track

ALPHA, MIN_EFFECT = 0.05, 0.1
STREAMS, LOOKS, LABELS_PER_LOOK = 400, 20, 25


def spec():
    check = {
        "name": "live-quality",
        "maxMaeRatio": 3.0,  # the guard: only absurd errors; the comparison judges the rest
        "minLabelled": 30,
        "failureLimit": 1000,
        "alpha": ALPHA,
        "minEffect": MIN_EFFECT,
    }
    return parse_spec({"steps": [10, 50, 100], "interval": "1s", "minRequests": 20, "checks": [check]})


def labelled(errors: np.ndarray) -> LiveQuality:
    """One interval's labelled rows as the exporter's Summaries report them."""
    return LiveQuality(
        labelled=float(errors.size), absolute_error=float(errors.sum()), squared_error=float((errors**2).sum())
    )


def refused(rng: np.random.Generator, draw, worse: float) -> bool:
    """Look at one stream's cumulative sums LOOKS times; return whether the comparison ever proved a regression."""
    canary, stable = LiveQuality(), LiveQuality()
    for _ in range(LOOKS):
        stable.add(labelled(draw(rng, LABELS_PER_LOOK)))
        canary.add(labelled(draw(rng, LABELS_PER_LOOK) * worse))
        found = compare_mae(canary, stable, ALPHA, MIN_EFFECT)
        if found is not None and found.decision == REGRESSION:
            return True
    return False


def rolled_back(rng: np.random.Generator, draw, worse: float) -> tuple[bool, str]:
    """Run one rollout's looks through the analysis; return whether a proven regression rolled it back."""
    analysis = Analysis(spec())
    for _ in range(LOOKS):
        stable = labelled(draw(rng, LABELS_PER_LOOK))
        canary = labelled(draw(rng, LABELS_PER_LOOK) * worse)
        verdict = analysis.judge(Observation(stable=track(live=stable), canary=track(live=canary)))
        if verdict.action == Action.ROLLBACK:
            [result] = verdict.results
            return result.evidence is not None and result.evidence.decision == REGRESSION, verdict.reason
    return False, ""


def half_normal(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.abs(rng.normal(0.0, 10.0, n))


def exponential(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.exponential(7.0, n)


@pytest.mark.parametrize("draw", [half_normal, exponential])
def test_an_identical_regressor_is_refused_at_most_alpha_of_the_time_and_a_worse_one_is_caught(draw):
    rng = np.random.default_rng(25)
    assert sum(refused(rng, draw, 1.0) for _ in range(STREAMS)) / STREAMS <= ALPHA
    assert sum(refused(rng, draw, 1.5) for _ in range(STREAMS)) / STREAMS >= 0.99


@pytest.mark.parametrize("draw", [half_normal, exponential])
def test_a_regressor_50_percent_worse_is_rolled_back_with_its_evidence(draw):
    rng = np.random.default_rng(26)
    outcomes = [rolled_back(rng, draw, 1.5) for _ in range(20)]
    assert all(proven for proven, _ in outcomes)
    reason = next(reason for proven, reason in outcomes if proven)
    assert "canary worse than stable on the MAE on labels" in reason
    # The bound crossed, the interval and both sample sizes (whole looks of LABELS_PER_LOOK each).
    assert re.search(r"upper bound -[0-9.]+ < 0 \(regression: difference -[0-9.]+ in \[", reason)
    assert re.search(r"n (\d+) vs \1\)\)$", reason)


def test_the_comparison_is_relative_to_the_stable_and_waits_for_its_sums():
    errors = np.array([1.0, 2.0, 3.0, 4.0])
    assert error_variance(labelled(errors)) == pytest.approx(np.var(errors, ddof=1))
    # An exporter from before the squared errors: no comparison, the guard alone judges.
    assert compare_mae(LiveQuality(4, absolute_error=10.0), LiveQuality(4, absolute_error=10.0), ALPHA, 0.1) is None
    # The same errors in other units give the same relative evidence.
    small = compare_mae(labelled(errors * 1.5), labelled(errors), ALPHA, 0.1)
    large = compare_mae(labelled(errors * 1500), labelled(errors * 1000), ALPHA, 0.1)
    assert small is not None
    assert large is not None
    assert small.statistic == pytest.approx(-0.5)
    assert large.statistic == pytest.approx(-0.5)
    assert small.bound == pytest.approx(large.bound)
    perfect = compare_mae(labelled(errors), labelled(np.zeros(4)), ALPHA, 0.1)
    assert perfect is not None
    assert perfect.decision == CONTINUE
    assert math.isinf(perfect.bound)
