import json
import math

import pytest

from serving.rollout.core.analyse import FAIL, NO_DATA, PASS, PENDING, Action, Analysis, Baseline
from serving.rollout.core.observe import Observation, Predictions, TrackSample, empty_observation
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


def sample(requests=100.0, errors=0.0, p99=0.05, buckets=CONFIDENT, drift=0.05) -> TrackSample:
    return TrackSample(
        requests=requests, errors=errors, p99_seconds=p99, predictions=binary(buckets), input_drift=drift
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
    )
    record = json.loads(json.dumps(baseline.to_record()))
    assert Baseline.from_record(record) == baseline
    empty = Baseline.from_record({})
    assert math.isnan(empty.p99_seconds)
    assert empty.stable_predictions.total == 0
