"""Guards: the rollout's own checks stop a broken variant at once, whatever its outcomes say."""

from __future__ import annotations

import threading
from pathlib import Path

from serving.experiments.decide import GUARD
from serving.experiments.guards import Guards
from serving.experiments.run import run_experiment
from serving.experiments.spec import ExperimentSpec, parse_experiment
from serving.model_service.store import PredictionStore
from serving.rollout.core.observe import Observation, TrackSample


class Intervals:
    """A metrics source replaying one observation per interval (the seam both real sources implement)."""

    def __init__(self, canaries: list[TrackSample]) -> None:
        self.canaries = canaries
        self.started = False

    def start(self) -> None:
        self.started = True

    def observe(self, window_seconds: float) -> Observation:
        canary = self.canaries.pop(0) if self.canaries else TrackSample(requests=100, errors=0, p99_seconds=0.05)
        return Observation(stable=TrackSample(requests=100, errors=0, p99_seconds=0.05), canary=canary)


def spec() -> ExperimentSpec:
    return parse_experiment(
        {
            "name": "g",
            "variants": [{"name": "a", "version": "1", "weight": 50}, {"name": "b", "version": "2", "weight": 50}],
            "outcome": {"metric": "label"},
            "maxDuration": "1m",
            "interval": "10ms",
            "guards": [
                {"name": "success-rate", "min": 0.95, "failureLimit": 2},
                {"name": "latency-p99", "maxSeconds": 1.0, "maxRatioToStable": 5, "failureLimit": 3},
            ],
        }
    )


def test_a_failing_variant_is_stopped_at_its_failure_limit_and_the_control_wins(tmp_path: Path) -> None:
    failing = TrackSample(requests=50, errors=25, p99_seconds=0.05, model_version="2")
    source = Intervals([failing, TrackSample(requests=0, errors=0), failing])
    store = PredictionStore(str(tmp_path / "p.sqlite"), 86_400.0)
    lines: list[str] = []
    finished = run_experiment(
        spec(),
        store,
        "m",
        {"a": "1", "b": "2"},
        Guards(spec(), {"b": source}, {"b": "2"}),
        threading.Event(),
        lines.append,
    )
    assert source.started
    assert finished.decision.outcome == GUARD
    assert finished.decision.winner == "a"
    assert finished.decision.reason.startswith("variant b stopped by guard success-rate (0.5), failed 2 time(s)")
    # The quiet interval in between was no evidence: stopped at the third look, not the second.
    assert len(finished.history.looks) == len(lines) == 3


def test_a_variant_whose_metrics_are_gone_counts_as_failing() -> None:
    down = TrackSample(missing="canary /metrics at http://127.0.0.1:9 not answering")
    guards = Guards(spec(), {"b": Intervals([down, down])}, {"b": "2"})
    assert guards.judge() is None
    reason = guards.judge()
    assert reason is not None
    assert "stopped by guard success-rate" in reason
    assert "not answering" in reason


def test_a_slow_variant_is_stopped_by_the_latency_guard() -> None:
    slow = TrackSample(requests=50, errors=0, p99_seconds=0.9, model_version="2")
    guards = Guards(spec(), {"b": Intervals([slow, slow, slow])}, {"b": "2"})
    reasons = [guards.judge() for _ in range(3)]
    assert reasons[:2] == [None, None]
    assert reasons[2] is not None
    assert reasons[2].startswith("variant b stopped by guard latency-p99 (0.9)")
