"""The shadow-churn and estimated-accuracy checks: decisions on seeded streams, slices, and the spec's keys."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from serving.rollout.core.analyse import Action, Analysis
from serving.rollout.core.baseline import Baseline
from serving.rollout.core.cbpe import check_estimated_accuracy, estimated_accuracy
from serving.rollout.core.churn import check_churn
from serving.rollout.core.observe import Observation, Predictions, TrackSample
from serving.rollout.core.paired import CANARY_ONLY, STABLE_ONLY, PairCounts
from serving.rollout.core.results import FAIL, NOT_APPLICABLE, PASS, PENDING
from serving.rollout.core.spec import SpecError, parse_check, parse_spec
from serving.rollout.core.timeline import evidence_label

CHURN = parse_check({"name": "shadow-churn", "maxChurn": 0.05, "alpha": 0.05, "minEffect": 0.02}, "checks[0]")
STREAMS, LOOKS, PER_LOOK = 400, 40, 50  # 400 shadow phases, looked at every 50 pairs up to 2,000


def decisions(true_churn: float, seed: int) -> tuple[float, float]:
    """Return the share of streams that failed and that passed, the check applied at every look until it settles."""
    rng = np.random.default_rng(seed)
    churned = rng.binomial(PER_LOOK, true_churn, size=(STREAMS, LOOKS)).cumsum(axis=1)
    failed = passed = 0
    for stream in churned:
        for look, count in enumerate(stream):
            pairs = PairCounts(pairs=PER_LOOK * (look + 1), churned=int(count))
            status = check_churn(CHURN, pairs, shadow=True).status
            if status != PENDING:
                failed, passed = failed + (status == FAIL), passed + (status == PASS)
                break
    return failed / STREAMS, passed / STREAMS


def test_churn_within_budget_passes_and_is_refused_at_most_alpha_of_the_time_however_often_it_is_looked_at() -> None:
    failed, passed = decisions(0.02, seed=1)
    assert failed <= 0.05
    assert passed >= 0.95
    # At the budget itself the chance of a refusal stays below alpha over all 40 looks.
    failed_at_budget, _ = decisions(0.05, seed=2)
    assert failed_at_budget <= 0.05


def test_churn_over_budget_is_refused() -> None:
    failed, passed = decisions(0.12, seed=3)
    assert failed >= 0.99
    assert passed == 0


def test_the_detail_names_each_slice_unpaired_copies_and_mcnemar() -> None:
    counts = PairCounts(
        pairs=200,
        churned=10,
        slices={
            ("contract_type", "monthly"): [100, 10],
            ("contract_type", "yearly"): [100, 0],
            ("region", "x"): [5, 1],
        },
        unpaired={"canary_failed": 3},
        labelled={CANARY_ONLY: 1, STABLE_ONLY: 9, "both_right": 40},
    )
    result = check_churn(CHURN, counts, shadow=True, slices=("contract_type",))
    assert result.value == 0.05
    assert "label churn 5.00% of 200 paired rows" in result.detail
    assert "3 unpaired {'canary_failed': 3}" in result.detail
    assert "contract_type: monthly 10.0% of 100, yearly 0.0% of 100" in result.detail
    assert "region" not in result.detail
    assert "McNemar on 50 labelled pairs: only the canary right 1, only the stable 9" in result.detail
    assert result.evidence is not None
    assert result.evidence.n_a == result.evidence.n_b == 200  # both versions answered every paired row
    assert result.evidence.statistic == pytest.approx(0.0)  # maxChurn - churn


def test_churn_is_pending_below_its_minimum_and_not_applicable_outside_the_shadow_or_without_pairs() -> None:
    assert check_churn(CHURN, PairCounts(pairs=29), shadow=True).status == PENDING
    assert check_churn(CHURN, PairCounts(pairs=500), shadow=False).status == NOT_APPLICABLE
    assert check_churn(CHURN, None, shadow=True).status == NOT_APPLICABLE


def test_proven_churn_rolls_the_shadow_phase_back_at_once() -> None:
    spec = parse_spec(
        {
            "steps": [50, 100],
            "interval": "1s",
            "shadow": {"duration": "1s", "slices": [{"feature": "plan"}]},
            "checks": [{"name": "shadow-churn", "maxChurn": 0.05, "failureLimit": 5}],
        }
    )
    assert spec.shadow.slices == ("plan",)
    traffic = TrackSample(requests=100, errors=0)
    pairs = PairCounts(pairs=400, churned=120, slices={("plan", "a"): [400, 120]})
    verdict = Analysis(spec).judge(Observation(traffic, traffic, pairs=pairs), shadow=True)
    assert verdict.action is Action.ROLLBACK
    assert verdict.reason.startswith("shadow-churn: label churn 30.00% of 400 paired rows")
    assert "plan: a 30.0% of 400" in verdict.reason
    # The timeline writes the evidence beside the check's row as it does for the other comparisons.
    churn = next(result for result in verdict.results if result.name == "shadow-churn")
    record = churn.evidence_record()
    assert record is not None
    label = evidence_label(record)
    assert label.startswith("regression (upper bound ")
    assert "maxChurn 0.05 - label churn -0.25" in label
    assert "n 400 canary / 400 stable" in label


@pytest.mark.parametrize(
    ("check", "field"),
    [
        ({"name": "shadow-churn"}, "checks[0].maxChurn"),
        ({"name": "shadow-churn", "maxChurn": 1.5}, "checks[0].maxChurn"),
        ({"name": "shadow-churn", "maxChurn": 0.1, "alpha": 0.05}, "checks[0].minEffect"),
        ({"name": "estimated-accuracy", "alpha": 0.05}, "checks[0].minEffect"),
        ({"name": "estimated-accuracy", "minEffect": 0.02, "max": 1}, "checks[0].max"),
    ],
)
def test_a_bad_check_names_the_field(check: dict, field: str) -> None:
    with pytest.raises(SpecError, match="^" + re.escape(field) + ":"):
        parse_spec({"steps": [100], "interval": "1s", "checks": [check]})


def test_bad_slices_name_the_field() -> None:
    with pytest.raises(SpecError, match=r"^shadow\.slices\[0\]:"):
        parse_spec({"steps": [100], "interval": "1s", "shadow": {"slices": ["plan"]}, "checks": [CHURN_SPEC]})


CHURN_SPEC = {"name": "shadow-churn", "maxChurn": 0.05}
ESTIMATED = parse_check({"name": "estimated-accuracy", "alpha": 0.05, "minEffect": 0.02}, "checks[0]")


def baseline_of(canary: tuple[float, float], stable: tuple[float, float]) -> Baseline:
    """A baseline whose tracks answered n instances with these summed answered-label probabilities."""

    def track(confidence: float, n: float) -> Predictions:
        return Predictions(classes={"a": n / 2, "b": n / 2}, confidence=confidence)

    return Baseline(canary_predictions=track(*canary), stable_predictions=track(*stable))


def test_estimated_accuracy_compares_the_canary_with_the_stable() -> None:
    assert estimated_accuracy(Predictions(classes={"a": 3, "b": 1}, confidence=3.0)) == 0.75
    assert math.isnan(estimated_accuracy(Predictions(values={1.0: 4})))
    worse = check_estimated_accuracy(ESTIMATED, baseline_of((800, 1000), (930, 1000)))
    assert worse.status == FAIL
    assert worse.detail.startswith("estimated accuracy (CBPE) canary 80.00%, stable 93.00%: regression")
    assert check_estimated_accuracy(ESTIMATED, baseline_of((9300, 10000), (9290, 10000))).status == PASS
    assert check_estimated_accuracy(ESTIMATED, baseline_of((93, 100), (92, 100))).status == PENDING
    assert check_estimated_accuracy(ESTIMATED, baseline_of((50, 60), (900, 1000))).status == PENDING  # < 100 answers
    regressor = Baseline(canary_predictions=Predictions(values={1.0: 500}), stable_predictions=Predictions())
    assert check_estimated_accuracy(ESTIMATED, regressor).status == NOT_APPLICABLE
