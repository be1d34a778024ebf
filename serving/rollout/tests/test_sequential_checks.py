import json
import math

import pytest

from serving.rollout.core.analyse import Action, Analysis
from serving.rollout.core.baseline import Baseline
from serving.rollout.core.observe import LiveQuality, Observation, Predictions, TrackSample
from serving.rollout.core.results import FAIL, PASS
from serving.rollout.core.sequential import CONTINUE, REGRESSION
from serving.rollout.core.spec import SpecError, load_spec, parse_spec
from serving.rollout.tests.test_analyse import CONFIDENT, binary, cumulative

LATENCY_BOUNDS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, math.inf]


def latency(per_bucket: list[float]) -> dict[float, float]:
    """Cumulative duration histogram from per-bucket request counts."""
    total, out = 0.0, {}
    for bound, count in zip(LATENCY_BOUNDS, per_bucket, strict=True):
        total += count
        out[bound] = total
    return out


FAST = latency([10, 400, 500, 80, 9, 1, 0, 0])  # 1000 requests, p99 inside the 0.1 s bucket
SLOW = latency([5, 200, 250, 40, 405, 100, 0, 0])  # half of them past the stable's p99 bucket


def track(requests=1000.0, errors=0.0, lat=FAST, buckets=CONFIDENT, live=None) -> TrackSample:
    return TrackSample(
        requests=requests,
        errors=errors,
        p99_seconds=0.05,
        latency=lat,
        predictions=binary(buckets),
        input_drift=0.05,
        live=live or LiveQuality(),
    )


SEQUENTIAL = {"alpha": 0.05, "minEffect": 0.01}


def spec(checks=None):
    return parse_spec(
        {
            "steps": [10, 50, 100],
            "interval": "1s",
            "minRequests": 20,
            "checks": checks
            or [
                {"name": "success-rate", "min": 0.5, "failureLimit": 3, **SEQUENTIAL},
                {"name": "latency-p99", "maxSeconds": 2.0, "failureLimit": 3, **SEQUENTIAL},
                {"name": "prediction-divergence", "max": 0.9, "failureLimit": 3, "alpha": 0.05, "minEffect": 0.05},
            ],
        }
    )


def evidence_of(verdict, name):
    return next(r for r in verdict.results if r.name == name)


def test_an_identical_canary_passes_with_its_evidence_and_continues():
    analysis = Analysis(spec())
    verdict = analysis.judge(Observation(stable=track(errors=5), canary=track(errors=5)))
    assert verdict.action == Action.ADVANCE
    for name in ("success-rate", "latency-p99", "prediction-divergence"):
        result = evidence_of(verdict, name)
        assert result.status == PASS
        assert result.evidence is not None
        assert result.evidence.decision == CONTINUE
    record = evidence_of(verdict, "success-rate").evidence_record()
    assert record["n_a"] == record["n_b"] == 1000
    assert record["compared"] == "non-5xx share"


def test_a_regression_below_every_threshold_rolls_back_at_once_on_cumulative_counts():
    """3 % errors pass the 0.5 guard every interval; summed over three intervals the sequence proves it."""
    analysis = Analysis(spec())
    actions = []
    for _ in range(3):
        verdict = analysis.judge(Observation(stable=track(errors=0), canary=track(errors=30)))
        actions.append(verdict.action)
        if verdict.action == Action.ROLLBACK:
            break
    assert actions[-1] == Action.ROLLBACK
    result = evidence_of(verdict, "success-rate")
    assert result.status == FAIL
    assert analysis.failures["success-rate"] < 3  # before the guard's failure limit
    assert result.evidence.decision == REGRESSION
    assert result.evidence.interval[1] < 0
    assert "upper bound" in verdict.reason
    assert f"n {1000 * len(actions)} vs {1000 * len(actions)}" in verdict.reason


def test_a_slow_canary_is_proven_slower_than_the_stable_p99():
    verdict = Analysis(spec()).judge(Observation(stable=track(), canary=track(lat=SLOW)))
    result = evidence_of(verdict, "latency-p99")
    assert verdict.action == Action.ROLLBACK
    assert result.evidence.decision == REGRESSION
    assert "0.1s" in result.compared


def test_a_shifted_prediction_distribution_is_proven_and_keeps_its_divergence_in_the_detail():
    shifted = cumulative([5, 5, 5, 5, 5, 5, 5, 5, 5, 5])  # flat against a confident stable: JS under 0.9
    analysis = Analysis(spec())
    stable_buckets = cumulative([400, 50, 10, 0, 0, 0, 0, 10, 50, 480])
    verdict = analysis.judge(Observation(stable=track(buckets=stable_buckets), canary=track(buckets=shifted)))
    verdict = analysis.judge(Observation(stable=track(buckets=stable_buckets), canary=track(buckets=shifted)))
    result = evidence_of(verdict, "prediction-divergence")
    assert result.evidence.decision == REGRESSION
    assert "histogram" in result.compared or "distribution" in result.compared
    assert verdict.action == Action.ROLLBACK


def test_live_accuracy_drop_is_proven_on_labels():
    checks = [{"name": "live-quality", "maxAccuracyDrop": 0.5, "minLabelled": 30, **SEQUENTIAL}]
    analysis = Analysis(spec(checks))
    stable, canary = LiveQuality(labelled=2000, correct=1800), LiveQuality(labelled=2000, correct=1600)
    verdict = analysis.judge(Observation(stable=track(live=stable), canary=track(live=canary)))
    assert verdict.action == Action.ROLLBACK
    assert evidence_of(verdict, "live-quality").compared == "accuracy on labels"


def test_a_restarted_controller_continues_the_same_test():
    analysis = Analysis(spec())
    analysis.judge(Observation(stable=track(errors=0), canary=track(errors=12)))
    restarted = Analysis(spec())
    restarted.baseline = Baseline.from_record(json.loads(json.dumps(analysis.baseline.to_record())))
    assert restarted.baseline == analysis.baseline
    verdict = restarted.judge(Observation(stable=track(errors=0), canary=track(errors=12)))
    assert evidence_of(verdict, "success-rate").evidence.n_a == 2000
    assert Baseline.from_record({}).canary_traffic.requests == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"alpha": 0.05}, "checks[0].minEffect: required with alpha"),
        ({"minEffect": 0.01}, "checks[0].alpha: required with minEffect"),
        ({"alpha": 0.7, "minEffect": 0.01}, "checks[0].alpha: a false-rollback rate"),
        ({"alpha": 0, "minEffect": 0.01}, "checks[0].alpha: must be > 0"),
        ({"alpha": 0.05, "minEffect": 2}, "checks[0].minEffect: a share between 0 and 1"),
        ({"alpha": "5%", "minEffect": 0.01}, "checks[0].alpha: expected a number"),
    ],
)
def test_bad_alpha_or_min_effect_is_refused_naming_the_field(extra, message):
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        spec([{"name": "success-rate", "min": 0.5, **extra}])


def test_input_drift_has_no_comparison_to_state():
    with pytest.raises(SpecError, match="unknown key"):
        spec([{"name": "input-drift", "max": 0.2, **SEQUENTIAL}])


def test_the_default_spec_states_alpha_and_min_effect_on_each_comparison():
    default = load_spec("serving/rollout/analysis.yaml")
    compared = {check.name: check for check in default.enabled_checks if check.sequential}
    assert set(compared) == {"success-rate", "latency-p99", "prediction-divergence"}
    assert {check.alpha for check in compared.values()} == {0.01}
    assert [compared[name].min_effect for name in ("success-rate", "latency-p99")] == [0.01, 0.05]


def test_predictions_without_a_shared_distribution_have_no_evidence():
    analysis = Analysis(spec())
    stable = TrackSample(requests=100, errors=0, latency=FAST, predictions=Predictions(values={1.0: 50, math.inf: 100}))
    verdict = analysis.judge(Observation(stable=stable, canary=track(requests=100)))
    assert evidence_of(verdict, "prediction-divergence").evidence is None


def test_the_decisive_step_holds_until_the_comparisons_rule_out_min_effect():
    """Promotion needs evidence: few requests hold (no failure counted), enough of them advance."""
    analysis = Analysis(spec())
    verdict = analysis.judge(Observation(stable=track(requests=100), canary=track(requests=100)), decisive=True)
    assert verdict.action == Action.HOLD
    held = {r.name for r in verdict.results if r.status == "pending"}
    assert held == {"success-rate", "latency-p99"}  # not the distributions: a new model may answer differently
    assert "holding before promotion until a regression of minEffect 0.01 is ruled out" in verdict.reason
    assert analysis.failures == {"success-rate": 0, "latency-p99": 0, "prediction-divergence": 0}
    many = track(requests=20_000, lat={b: 20 * c for b, c in FAST.items()})
    verdict = analysis.judge(Observation(stable=many, canary=many), decisive=True)
    assert verdict.action == Action.ADVANCE, verdict.reason
    assert evidence_of(verdict, "success-rate").evidence.decision == "no_regression"
