"""Prediction divergence per task, and the input-drift check of a model without a reference profile."""

import math

import numpy as np
import pytest

from serving.rollout.core.analyse import Action, Analysis
from serving.rollout.core.divergence import divergence
from serving.rollout.core.histogram import bin_shares, jensen_shannon
from serving.rollout.core.observe import DRIFT_OFF, DRIFT_ON, Observation, Predictions, TrackSample
from serving.rollout.core.results import FAIL, NO_DATA, NOT_APPLICABLE, PASS, PENDING
from serving.rollout.core.spec import parse_spec
from serving.rollout.tests.test_histogram import PROBABILITY_BOUNDS, deciles, histogram

CLASSES = ("0", "1", "2")


def binary_predictions(probability: np.ndarray) -> Predictions:
    """What a binary service exports for these P(positive): its histogram and the labels cut at 0.5."""
    positives = float(np.count_nonzero(probability > 0.5))
    return Predictions(
        classes={"0": len(probability) - positives, "1": positives},
        probabilities={"1": histogram(probability, PROBABILITY_BOUNDS)},
    )


def multiclass_predictions(probability: np.ndarray) -> Predictions:
    """What a multiclass service exports for (n, 3) probabilities: every class's histogram, argmax counts."""
    labels = probability.argmax(axis=1)
    return Predictions(
        classes={name: float(np.count_nonzero(labels == i)) for i, name in enumerate(CLASSES)},
        probabilities={name: histogram(probability[:, i], PROBABILITY_BOUNDS) for i, name in enumerate(CLASSES)},
    )


def confident(rng: np.random.Generator, n: int, shares=(0.33, 0.4, 0.27)) -> np.ndarray:
    """Probabilities of a sound 3-class model: mostly sure of one class, classes in `shares`."""
    labels = rng.choice(3, size=n, p=shares)
    probability = rng.dirichlet([0.3, 0.3, 0.3], size=n) * 0.2
    probability[np.arange(n), labels] += 0.8
    return probability / probability.sum(axis=1, keepdims=True)


def spec(*checks):
    return parse_spec({"steps": [50, 100], "interval": "1s", "minRequests": 5, "checks": list(checks)})


DIVERGENCE = {"name": "prediction-divergence", "max": 0.25, "minPredictions": 30, "failureLimit": 2}
DRIFT = {"name": "input-drift", "max": 0.25, "minPredictions": 30, "failureLimit": 2}


def track(predictions: Predictions, **labels) -> TrackSample:
    return TrackSample(requests=100.0, errors=0.0, p99_seconds=0.05, predictions=predictions, **labels)


def test_binary_divergence_is_the_probability_histograms_as_before_tasks():
    """The class counts are the histogram cut at 0.5: never larger, so the number is today's."""
    rng = np.random.default_rng(3)
    for canary_probability in (rng.beta(0.4, 0.4, 200), rng.uniform(size=200), rng.beta(2, 5, 200)):
        canary, stable = binary_predictions(canary_probability), binary_predictions(rng.beta(0.4, 0.4, 200))
        before_tasks = jensen_shannon(bin_shares(canary.probabilities["1"]), bin_shares(stable.probabilities["1"]))
        found = divergence(canary, stable)
        assert found.value == pytest.approx(before_tasks)
        assert found.distribution == "P(class 1) histogram"
        assert found.compared == ("P(class 1) histogram", "predicted class distribution")


def test_multiclass_garbage_fails_and_a_sound_challenger_passes():
    rng = np.random.default_rng(4)
    stable = multiclass_predictions(confident(rng, 300))
    sound = divergence(multiclass_predictions(confident(rng, 300)), stable)
    assert sound.value < 0.05
    garbage = divergence(multiclass_predictions(rng.dirichlet([2.0, 2.0, 2.0], size=300)), stable)
    assert garbage.value > 0.25
    assert garbage.distribution.startswith("P(class ")


def test_multiclass_class_distribution_can_be_the_largest_and_is_named():
    """Each class's probabilities fall in the same buckets on both tracks, yet the canary always says class 0."""
    first, second = [0.38, 0.32, 0.30], [0.32, 0.38, 0.30]
    stable = multiclass_predictions(np.array([first, second] * 100))
    canary = multiclass_predictions(np.array([first] * 200))
    found = divergence(canary, stable)
    assert found.distribution == "predicted class distribution"
    assert found.value == pytest.approx(jensen_shannon({"0": 1.0, "1": 0.0}, {"0": 0.5, "1": 0.5}))
    assert found.value > 0.25
    assert len(found.compared) == 4


def test_regression_histograms_with_their_own_bounds_are_compared():
    rng = np.random.default_rng(6)
    stable = Predictions(values=histogram(rng.normal(150, 70, 300), deciles(rng.normal(150, 70, 300))))
    sound = Predictions(values=histogram(rng.normal(150, 70, 300), deciles(rng.normal(150, 70, 300))))
    garbage = Predictions(values=histogram(rng.normal(150, 5, 300), deciles(rng.normal(150, 70, 300))))
    analysis = Analysis(spec(DIVERGENCE))
    passed = analysis.judge(Observation(stable=track(stable), canary=track(sound)))
    assert passed.action is Action.ADVANCE
    analysis = Analysis(spec(DIVERGENCE))
    failed = analysis.judge(Observation(stable=track(stable), canary=track(garbage)))
    result = failed.results[0]
    assert result.status == FAIL
    assert "on the predicted value histogram (max 0.25)" in result.detail


def test_tracks_serving_different_tasks_never_pass():
    rng = np.random.default_rng(7)
    regression = track(Predictions(values=histogram(rng.normal(size=100), [-1.0, 0.0, 1.0])), task="regression")
    classifier = track(binary_predictions(rng.uniform(size=100)), task="binary")
    verdict = Analysis(spec(DIVERGENCE)).judge(Observation(stable=classifier, canary=regression))
    assert verdict.results[0].status == NO_DATA
    assert "the canary serves a regression model, the stable a binary model" in verdict.reason
    unlabelled = Observation(stable=track(classifier.predictions), canary=track(regression.predictions))
    nothing_shared = Analysis(spec(DIVERGENCE)).judge(unlabelled)
    assert nothing_shared.results[0].status == NO_DATA
    assert "no prediction distribution both tracks report" in nothing_shared.reason


def test_min_predictions_counts_predictions_of_any_kind():
    rng = np.random.default_rng(8)
    few = Predictions(values=histogram(rng.normal(size=20), [-1.0, 0.0, 1.0]))
    assert few.total == 20
    analysis = Analysis(spec(DIVERGENCE))
    pending = analysis.judge(Observation(stable=track(few), canary=track(few)))
    assert pending.results[0].status == PENDING
    assert pending.results[0].detail == "20 predictions so far, judging from 30"
    judged = analysis.judge(Observation(stable=track(few), canary=track(few)))
    assert judged.results[0].status == PASS
    assert multiclass_predictions(confident(rng, 40)).total == 40


def drift_observation(psi: float = math.nan, **labels) -> Observation:
    predictions = Predictions(values=histogram(np.arange(40.0), [10.0, 20.0, 30.0]))
    return Observation(stable=track(predictions), canary=track(predictions, input_drift=psi, **labels))


def test_input_drift_of_a_model_without_a_profile_is_not_applicable_and_does_not_hold():
    analysis = Analysis(spec(DRIFT), canary_has_profile=False)
    verdicts = [analysis.judge(drift_observation(drift=DRIFT_OFF)) for _ in range(3)]
    assert [v.results[0].status for v in verdicts] == [NOT_APPLICABLE] * 3
    assert all(v.action is Action.ADVANCE for v in verdicts)
    assert analysis.failures["input-drift"] == 0
    assert "input-drift not applicable: the canary's model has no reference profile" in verdicts[0].reason


@pytest.mark.parametrize(
    ("labels", "has_profile", "why"),
    [
        ({"drift": DRIFT_ON}, None, "no values found (max 0.25)"),
        ({}, None, "no values found (max 0.25)"),
        ({"drift": "off,on"}, None, "no values found (max 0.25)"),
        ({"drift": DRIFT_OFF}, True, "has a reference profile but its service reports drift off"),
    ],
)
def test_a_missing_drift_gauge_that_should_exist_fails(labels, has_profile, why):
    analysis = Analysis(spec(DRIFT), canary_has_profile=has_profile)
    verdicts = [analysis.judge(drift_observation(**labels)) for _ in range(2)]
    assert [v.results[0].status for v in verdicts] == [NO_DATA, NO_DATA]
    assert verdicts[-1].action is Action.ROLLBACK
    assert why in verdicts[-1].reason


def test_a_drift_value_is_judged_whatever_the_label_says():
    analysis = Analysis(spec(DRIFT), canary_has_profile=False)
    verdict = analysis.judge(drift_observation(0.9, drift=DRIFT_OFF))
    assert verdict.results[0].status == FAIL


def test_a_classifier_without_probabilities_is_judged_on_its_classes():
    """A pyfunc model that answers labels only: its service exports class counts and nothing else."""
    stable = Predictions(classes={"no": 70.0, "yes": 30.0})
    found = divergence(Predictions(classes={"no": 100.0}), stable)
    assert found.compared == ("predicted class distribution",)
    assert found.value == pytest.approx(jensen_shannon({"no": 1.0, "yes": 0.0}, {"no": 0.7, "yes": 0.3}))
