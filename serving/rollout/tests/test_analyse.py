import json
import math

import pytest

from serving.rollout.core.analyse import Action, Analysis
from serving.rollout.core.baseline import Baseline
from serving.rollout.core.observe import LiveQuality, Observation, Predictions, TrackSample, empty_observation
from serving.rollout.core.results import FAIL, NO_DATA, NOT_APPLICABLE, PASS, PENDING
from serving.rollout.core.spec import parse_spec

BOUNDS = [0.1 * i for i in range(1, 11)] + [math.inf]


def cumulative(counts: list[int]) -> dict[float, float]:
    """Build cumulative buckets from per-bin counts (10 bins + overflow)."""
    total, out = 0.0, {}
    for bound, count in zip(BOUNDS, [*counts, 0], strict=True):
        total += count
        out[round(bound, 1) if not math.isinf(bound) else bound] = total
    return out


CONFIDENT = cumulative([40, 5, 1, 0, 0, 0, 0, 1, 5, 48])
FLAT = cumulative([10] * 10)


def binary(buckets: dict[float, float]) -> Predictions:
    """What a binary service exports: P(positive) histogram and class counts (the same histogram cut at 0.5)."""
    positives = buckets[math.inf] - buckets[0.5]
    return Predictions(classes={"0": buckets[0.5], "1": positives}, probabilities={"1": dict(buckets)})


def sample(requests=100.0, errors=0.0, p99=0.05, buckets=CONFIDENT, drift=0.05, live=None) -> TrackSample:
    return TrackSample(
        requests=requests,
        errors=errors,
        p99_seconds=p99,
        predictions=binary(buckets),
        input_drift=drift,
        live=live or LiveQuality(),
    )


def spec(**overrides):
    data = {
        "steps": [10, 50, 100],
        "interval": "1s",
        "minRequests": 20,
        "checks": [
            {"name": "success-rate", "min": 0.99, "failureLimit": 2},
            {"name": "latency-p99", "maxSeconds": 0.5, "maxRatioToStable": 2.0, "failureLimit": 2},
            {"name": "prediction-divergence", "max": 0.1, "failureLimit": 2},
            {"name": "input-drift", "max": 0.25, "failureLimit": 3},
        ],
    }
    data.update(overrides)
    return parse_spec(data)


def statuses(verdict):
    return {r.name: r.status for r in verdict.results}


def test_healthy_canary_advances():
    verdict = Analysis(spec()).judge(Observation(stable=sample(), canary=sample()))
    assert verdict.action is Action.ADVANCE
    assert set(statuses(verdict).values()) == {PASS}


def test_errors_hold_then_roll_back_at_failure_limit():
    analysis = Analysis(spec())
    bad = Observation(stable=sample(), canary=sample(errors=10))
    first = analysis.judge(bad)
    assert first.action is Action.HOLD
    assert statuses(first)["success-rate"] == FAIL
    second = analysis.judge(bad)
    assert second.action is Action.ROLLBACK
    assert second.reason.startswith("success-rate failed 2 time(s)")


def test_garbage_predictions_fail_divergence_with_all_200s():
    verdict = Analysis(spec()).judge(Observation(stable=sample(), canary=sample(buckets=FLAT)))
    assert statuses(verdict)["success-rate"] == PASS
    assert statuses(verdict)["prediction-divergence"] == FAIL


def test_slow_canary_fails_absolute_and_relative_latency():
    analysis = Analysis(spec())
    slow = analysis.judge(Observation(stable=sample(), canary=sample(p99=0.9)))
    assert statuses(slow)["latency-p99"] == FAIL
    relative = analysis.judge(Observation(stable=sample(p99=0.05), canary=sample(p99=0.3)))
    assert statuses(relative)["latency-p99"] == FAIL
    assert "x stable p99" in next(r.detail for r in relative.results if r.name == "latency-p99")


@pytest.mark.parametrize(
    "observation",
    [
        Observation(stable=sample(), canary=sample(p99=math.nan)),
        Observation(stable=sample(), canary=sample(drift=math.nan)),
        Observation(stable=sample(), canary=sample(requests=5)),
        Observation(stable=sample(), canary=TrackSample(missing="canary target down (up=0)")),
        empty_observation("prometheus unreachable"),
    ],
)
def test_missing_nan_or_too_few_requests_never_pass(observation):
    analysis = Analysis(spec())
    verdict = analysis.judge(observation)
    assert verdict.action is not Action.ADVANCE
    assert NO_DATA in statuses(verdict).values()


def test_no_data_rolls_back_at_failure_limit():
    analysis = Analysis(spec())
    verdicts = [analysis.judge(empty_observation("down")) for _ in range(2)]
    assert [v.action for v in verdicts] == [Action.HOLD, Action.ROLLBACK]


def test_failures_accumulate_across_passing_intervals():
    analysis = Analysis(spec())
    assert analysis.judge(Observation(stable=sample(), canary=sample(errors=5))).action is Action.HOLD
    assert analysis.judge(Observation(stable=sample(), canary=sample())).action is Action.ADVANCE
    assert analysis.judge(Observation(stable=sample(), canary=sample(errors=5))).action is Action.ROLLBACK


def test_stable_baseline_is_kept_when_stable_gets_no_traffic():
    analysis = Analysis(spec(checks=[{"name": "prediction-divergence", "max": 0.1, "failureLimit": 3}]))
    assert analysis.judge(Observation(stable=sample(), canary=sample(buckets=FLAT))).action is Action.HOLD
    idle_stable = TrackSample(requests=0.0, errors=0.0)
    at_full_weight = analysis.judge(Observation(stable=idle_stable, canary=sample(buckets=FLAT)))
    assert statuses(at_full_weight)["prediction-divergence"] == FAIL
    assert analysis.failures["prediction-divergence"] == 2


def test_divergence_waits_for_enough_predictions_without_counting_a_failure():
    few = cumulative([1, 0, 0, 0, 0, 0, 0, 0, 0, 2])
    analysis = Analysis(spec(checks=[{"name": "prediction-divergence", "max": 0.1, "minPredictions": 30}]))
    pending = analysis.judge(Observation(stable=sample(), canary=sample(buckets=few)))
    assert pending.action is Action.HOLD
    assert statuses(pending)["prediction-divergence"] == PENDING
    assert analysis.failures["prediction-divergence"] == 0
    summed = analysis.judge(Observation(stable=sample(), canary=sample(buckets=CONFIDENT)))
    assert statuses(summed)["prediction-divergence"] == PASS


def test_disabled_check_is_ignored():
    checks = spec().checks
    data_checks = [
        {"name": "success-rate", "min": 0.99},
        {"name": "input-drift", "max": 0.2, "enabled": False},
    ]
    assert len(checks) == 4
    verdict = Analysis(spec(checks=data_checks)).judge(Observation(stable=sample(), canary=sample(drift=9.0)))
    assert verdict.action is Action.ADVANCE
    assert list(statuses(verdict)) == ["success-rate"]


def test_metrics_from_another_model_version_never_pass():
    mixed = TrackSample(
        requests=100.0,
        errors=0.0,
        p99_seconds=0.05,
        predictions=binary(CONFIDENT),
        input_drift=0.05,
        model_version="1,2",
    )
    verdict = Analysis(spec(), canary_version="2").judge(Observation(stable=sample(), canary=mixed))
    assert verdict.action is Action.HOLD
    assert "from model version 1,2, not 2" in verdict.reason


def test_input_drift_waits_for_enough_scored_rows():
    analysis = Analysis(spec(checks=[{"name": "input-drift", "max": 0.25, "minPredictions": 150}]))
    early = analysis.judge(Observation(stable=sample(), canary=sample(drift=0.9)))
    assert statuses(early)["input-drift"] == PENDING
    assert analysis.failures["input-drift"] == 0
    later = analysis.judge(Observation(stable=sample(), canary=sample(drift=0.9)))
    assert statuses(later)["input-drift"] == FAIL


def test_a_baseline_survives_its_record_unchanged():
    baseline = Baseline(
        p99_seconds=0.031,
        stable_predictions=Predictions(
            classes={"a": 3.0, "b": 5.0}, probabilities={"a": {0.5: 2.0, math.inf: 8.0}}, values={1.5: 1.0}
        ),
        canary_predictions=Predictions(values={-2.0: 4.0, math.inf: 9.0}),
        stable_live=LiveQuality(labelled=40.0, correct=36.0, absolute_error=0.0),
        canary_live=LiveQuality(labelled=12.0, correct=7.0, absolute_error=0.0),
    )
    record = json.loads(json.dumps(baseline.to_record()))
    assert Baseline.from_record(record) == baseline
    empty = Baseline.from_record({})
    assert math.isnan(empty.p99_seconds)
    assert empty.stable_predictions.total == 0
    assert math.isnan(empty.canary_live.labelled)
    assert math.isnan(empty.stable_live.correct)


LIVE = {"name": "live-quality", "maxAccuracyDrop": 0.05, "maxMaeRatio": 1.2, "minLabelled": 30, "failureLimit": 2}


def classified(labelled: float, correct: float) -> LiveQuality:
    return LiveQuality(labelled=labelled, correct=correct)


def regressed(labelled: float, absolute_error: float) -> LiveQuality:
    return LiveQuality(labelled=labelled, absolute_error=absolute_error)


def live_verdict(analysis: Analysis, stable: LiveQuality, canary: LiveQuality):
    verdict = analysis.judge(Observation(stable=sample(live=stable), canary=sample(live=canary)))
    return verdict, next(r for r in verdict.results if r.name == "live-quality")


def test_live_quality_passes_within_the_accuracy_drop():
    analysis = Analysis(spec(checks=[LIVE]))
    verdict, result = live_verdict(analysis, classified(40, 36), classified(40, 35))
    assert result.status == PASS
    assert result.value == pytest.approx(35 / 40)
    assert verdict.action is Action.ADVANCE
    _, at_the_bound = live_verdict(Analysis(spec(checks=[LIVE])), classified(100, 52), classified(100, 47))
    assert at_the_bound.status == PASS


def test_live_quality_fails_an_accuracy_drop_then_rolls_back():
    analysis = Analysis(spec(checks=[LIVE]))
    verdict, result = live_verdict(analysis, classified(40, 36), classified(40, 30))
    assert (result.status, verdict.action) == (FAIL, Action.HOLD)
    assert "canary accuracy 0.75, stable 0.9" in result.detail
    verdict, _ = live_verdict(analysis, classified(10, 9), classified(10, 7))
    assert verdict.action is Action.ROLLBACK
    assert verdict.reason.startswith("live-quality failed 2 time(s)")


def test_live_quality_fails_a_mae_ratio():
    analysis = Analysis(spec(checks=[LIVE]))
    _, passed = live_verdict(analysis, regressed(50, 100.0), regressed(50, 110.0))
    assert passed.status == PASS
    _, failed = live_verdict(analysis, regressed(50, 100.0), regressed(50, 400.0))
    assert failed.status == FAIL
    assert failed.value == pytest.approx(510.0 / 100)


def test_live_quality_waits_for_min_labelled_on_both_versions_and_sums_them():
    analysis = Analysis(spec(checks=[LIVE]))
    verdict, result = live_verdict(analysis, classified(20, 18), classified(40, 10))
    assert (result.status, verdict.action) == (PENDING, Action.HOLD)
    assert result.detail.startswith("40 canary / 20 stable labelled rows so far")
    assert analysis.failures["live-quality"] == 0
    _, result = live_verdict(analysis, classified(10, 9), LiveQuality())
    assert result.status == FAIL
    assert analysis.baseline.stable_live == classified(30, 27)
    assert analysis.baseline.canary_live.labelled == 40


def test_live_quality_without_any_label_is_pending_never_a_failure():
    analysis = Analysis(spec(checks=[LIVE]))
    for _ in range(5):
        verdict, result = live_verdict(analysis, LiveQuality(), LiveQuality())
        assert (result.status, verdict.action) == (PENDING, Action.HOLD)
    assert "no label yet" in result.detail
    assert analysis.failures["live-quality"] == 0


def test_live_quality_labels_that_fit_no_bound_are_no_data():
    accuracy_only = {"name": "live-quality", "maxAccuracyDrop": 0.05, "minLabelled": 30}
    analysis = Analysis(spec(checks=[accuracy_only]))
    _, result = live_verdict(analysis, regressed(50, 100.0), regressed(50, 100.0))
    assert result.status == NO_DATA
    assert "maxAccuracyDrop" in result.detail


def test_live_quality_does_not_hold_the_shadow_phase():
    analysis = Analysis(spec(checks=[{"name": "success-rate", "min": 0.99}, LIVE]))
    verdict = analysis.judge(Observation(stable=sample(live=classified(5, 5)), canary=sample()), shadow=True)
    assert statuses(verdict)["live-quality"] == NOT_APPLICABLE
    assert verdict.action is Action.ADVANCE
    assert "not applicable in the shadow phase" in verdict.reason
    assert analysis.baseline.stable_live.labelled == 5
    after = analysis.judge(Observation(stable=sample(live=classified(5, 5)), canary=sample()))
    assert statuses(after)["live-quality"] == PENDING
