"""Guards: the rollout's own success-rate and latency checks stop a broken variant at once.

Each interval every treatment is judged as a canary against the control as its stable, by the rollout's
`run_check` (no copy of it here), on the metrics its service exports. A failed interval, or a service that does
not answer, counts toward the guard's `failureLimit`; at the limit the experiment stops and the control
wins. An interval in which a treatment got no request at all is no evidence either way and is not judged:
an experiment's traffic is the users', and a quiet minute is not the variant's fault.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from serving.experiments.spec import ExperimentSpec
from serving.rollout.core.analyse import run_check
from serving.rollout.core.baseline import Baseline
from serving.rollout.core.observe import MetricsSource
from serving.rollout.core.results import FAIL, NO_DATA, CheckResult
from serving.rollout.core.spec import AnalysisSpec


@dataclass
class Guards:
    """Per treatment: its metrics source (the control as stable, it as canary), baseline and failure counts."""

    spec: ExperimentSpec
    sources: Mapping[str, MetricsSource]
    versions: Mapping[str, str]
    failures: dict[tuple[str, str], int] = field(default_factory=dict)
    baselines: dict[str, Baseline] = field(default_factory=dict)
    last: dict[str, tuple[CheckResult, ...]] = field(default_factory=dict)

    def start(self) -> None:
        """Take every source's baseline (the first interval's deltas start here)."""
        for source in self.sources.values():
            source.start()

    def judge(self) -> str | None:
        """Judge one interval of every treatment; return why the experiment must stop, None to go on."""
        if not self.spec.guards:
            return None
        analysis = AnalysisSpec(
            steps=(100,),
            interval=self.spec.interval,
            min_requests=1,
            progress_deadline=self.spec.max_duration,
            checks=self.spec.guards,
        )
        for treatment, source in self.sources.items():
            observation = source.observe(self.spec.interval)
            canary = observation.canary
            if not observation.error and not canary.missing and not canary.requests > 0:
                continue
            baseline = self.baselines.setdefault(treatment, Baseline())
            baseline.update(observation, 1)
            results = tuple(
                run_check(guard, analysis, observation, baseline, self.versions[treatment], min_requests=1)
                for guard in self.spec.guards
            )
            self.last[treatment] = results
            for guard, result in zip(self.spec.guards, results, strict=True):
                if result.status not in (FAIL, NO_DATA):
                    continue
                key = (treatment, guard.name)
                self.failures[key] = self.failures.get(key, 0) + 1
                if self.failures[key] >= guard.failure_limit:
                    value = "" if math.isnan(result.value) else f" ({result.value:.4g})"
                    return (
                        f"variant {treatment} stopped by guard {guard.name}{value}, failed "
                        f"{self.failures[key]} time(s) (failureLimit {guard.failure_limit}): {result.detail}"
                    )
        return None
