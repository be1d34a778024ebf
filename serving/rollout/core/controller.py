"""The rollout loop: set a weight, wait an interval, judge the metrics, then advance, hold or roll back.

One implementation for both targets; only the edges differ (a `TrafficEdge`, a `MetricsSource`, the
registry behind a `RolloutRecorder`). Every branch ends safe: any exception inside the loop rolls back.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from components.common.redact import redact
from components.common.tracking import PROMOTED, ROLLED_BACK
from serving.rollout.core.analyse import Action, Analysis, Verdict
from serving.rollout.core.observe import MetricsSource
from serving.rollout.core.record import RolloutRecorder
from serving.rollout.core.spec import AnalysisSpec
from serving.rollout.core.telemetry import ROLLOUT_CHECKS, ROLLOUT_DECISIONS, ROLLOUT_WEIGHT, observe_evidence

LOG = logging.getLogger("plinth.rollout")
ALIAS_ATTEMPTS = 3


def judged(recorder: RolloutRecorder, weight: int, verdict: Verdict, where: str | None = None) -> str:
    """Count one interval's check results, add them to the history and return the line that says them.

    `where` names the phase in the line ("shadow"); the weight by default.
    """
    for result in verdict.results:
        ROLLOUT_CHECKS.labels(result.name, result.status).inc()
        observe_evidence(result)
    checks = ", ".join(f"{r.name}={r.status}" for r in verdict.results)
    recorder.event(
        "analysis",
        weight=weight,
        action=verdict.action.value,
        reason=verdict.reason,
        checks=[
            {"name": r.name, "status": r.status, "value": r.value, "detail": r.detail, "evidence": r.evidence_record()}
            for r in verdict.results
        ],
    )
    why = "" if verdict.action is Action.ADVANCE else f" - {verdict.reason}"
    return f"at {where or f'{weight}%'}: {verdict.action.value} ({checks}){why}"


class TrafficEdge(Protocol):
    """Where the traffic split lives: the local router or an HTTPRoute."""

    def set_weight(self, weight: int) -> None:
        """Send `weight` percent of traffic to the canary."""

    def set_mirror(self, on: bool) -> None:
        """Mirror live traffic to the canary (its answers discarded), or stop mirroring."""

    def promote(self) -> None:
        """Make the stable serve the canary's version, then canary weight 0 and canary stopped."""

    def rollback(self) -> None:
        """Canary weight 0 and canary stopped; the stable is untouched."""


@dataclass
class Outcome:
    """How a rollout ended, with the timeline of weights and verdicts (seconds since start)."""

    status: str
    reason: str
    timeline: list[tuple[float, str]] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


class Controller:
    """Drives one canary through the analysis spec."""

    def __init__(
        self,
        spec: AnalysisSpec,
        source: MetricsSource,
        edge: TrafficEdge,
        recorder: RolloutRecorder,
        model_name: str,
        stop: threading.Event | None = None,
        on_line: Callable[[str], None] | None = None,
        canary_has_profile: bool | None = None,
        pre_traffic: Callable[[], str | None] | None = None,
    ) -> None:
        self.spec = spec
        # Asks the canary its reference rows before any traffic: why it is refused, None when it passed.
        self.pre_traffic = pre_traffic
        # What the registry says about the canary's reference profile (None: not known), for input drift.
        self.canary_has_profile = canary_has_profile
        self.source = source
        self.edge = edge
        self.recorder = recorder
        self.model_name = model_name
        self.stop = stop or threading.Event()
        self.on_line = on_line or LOG.info
        self.outcome = Outcome(status="", reason="")

    def say(self, line: str) -> None:
        """Log one human-readable line and keep it in the timeline."""
        self.outcome.timeline.append((time.time() - self.outcome.started, line))
        self.on_line(f"[{self.model_name} v{self.recorder.version}] {line}")

    def set_weight(self, weight: int) -> None:
        """Apply a weight on the edge, in the metric and in the history."""
        self.edge.set_weight(weight)
        ROLLOUT_WEIGHT.labels(self.model_name).set(weight)
        self.recorder.weight(weight)
        self.say(f"canary weight {weight}%")

    def report(self, weight: int, verdict: Verdict, where: str | None = None) -> None:
        """Count and log one interval's check results."""
        self.say(judged(self.recorder, weight, verdict, where))

    def analyse_step(self, weight: int, analysis: Analysis, shadow: bool = False) -> Action:
        """Run intervals at one weight until it advances, or a rollback is due.

        In the shadow phase (weight 0, mirrored traffic) an interval that passes advances only once the
        phase has lasted `shadow.duration`.
        """
        began = time.time()
        where = "shadow" if shadow else f"{weight}%"
        while True:
            if self.stop.wait(self.spec.interval):
                self.outcome.reason = "rollout interrupted"
                return Action.ROLLBACK
            if time.time() - self.outcome.started > self.spec.progress_deadline:
                deadline = self.spec.progress_deadline
                self.outcome.reason = f"progress deadline {deadline:g}s exceeded at {where}"
                return Action.ROLLBACK
            verdict = analysis.judge(self.source.observe(self.spec.interval), shadow, weight >= self.spec.decisive_step)
            self.report(weight, verdict, where)
            early = shadow and time.time() - began < self.spec.shadow.duration
            if verdict.action is not Action.HOLD and not (verdict.action is Action.ADVANCE and early):
                self.outcome.reason = verdict.reason
                return verdict.action

    def shadow_phase(self, analysis: Analysis) -> Action:
        """Mirror live traffic to the canary at weight 0 until its answers pass the analysis, or roll back."""
        self.edge.set_mirror(True)
        self.recorder.event("shadow", weight=0)
        self.say(
            f"shadow: the canary gets a mirror of live traffic, its answers discarded, for at least "
            f"{self.spec.shadow.duration:g}s"
        )
        action = self.analyse_step(0, analysis, shadow=True)
        self.edge.set_mirror(False)
        return action

    def run(self, stable_version: str | None = None) -> Outcome:
        """Run the whole rollout and return how it ended; never leaves the canary serving on failure."""
        self.outcome = Outcome(status="", reason="", started=time.time())
        self.recorder.begin(stable_version)
        self.say(
            f"rollout started against stable v{stable_version}: steps {list(self.spec.steps)}, "
            f"interval {self.spec.interval:g}s"
        )
        try:
            refused = self.pre_traffic() if self.pre_traffic else None
            if refused:
                return self.roll_back(f"refused before any traffic: {refused}")
            self.source.start()
            analysis = Analysis(self.spec, self.recorder.version, self.canary_has_profile)
            if self.spec.shadow.enabled and self.shadow_phase(analysis) is Action.ROLLBACK:
                return self.roll_back(self.outcome.reason)
            for weight in self.spec.steps:
                self.set_weight(weight)
                if self.analyse_step(weight, analysis) is Action.ROLLBACK:
                    return self.roll_back(self.outcome.reason)
            return self.promote()
        except Exception as error:
            LOG.error("rollout failed: %s", redact("".join(traceback.format_exception(error))))
            return self.roll_back(f"controller error: {type(error).__name__}: {redact(str(error))}")

    def move_alias(self) -> str | None:
        """Move `champion`, retrying briefly; return the error when the registry never answered."""
        error = ""
        for attempt in range(ALIAS_ATTEMPTS):
            try:
                self.recorder.move_champion()
                return None
            except Exception as exc:  # any registry failure: the alias did not move
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                self.say(f"registry unreachable at promotion ({attempt + 1}/{ALIAS_ATTEMPTS}): {error}")
                if self.stop.wait(self.spec.interval / ALIAS_ATTEMPTS):
                    break
        return error

    def promote(self) -> Outcome:
        """Move the alias first: if the registry is down, roll back with the alias unchanged."""
        error = self.move_alias()
        if error is not None:
            return self.roll_back(f"registry unreachable at promotion, champion alias unchanged ({error})")
        self.edge.promote()
        ROLLOUT_WEIGHT.labels(self.model_name).set(0)
        reason = f"all {len(self.spec.steps)} steps passed analysis"
        self.say(f"PROMOTED: champion -> v{self.recorder.version}, stable serves it, canary at 0% ({reason})")
        return self.finish(PROMOTED, reason)

    def roll_back(self, reason: str) -> Outcome:
        """Weight 0, canary stopped, champion untouched, version rejected with the reason."""
        try:
            self.edge.rollback()
        finally:
            ROLLOUT_WEIGHT.labels(self.model_name).set(0)
        self.say(f"ROLLED BACK: canary weight 0, canary stopped, champion unchanged - {reason}")
        return self.finish(ROLLED_BACK, reason)

    def finish(self, status: str, reason: str) -> Outcome:
        """Count the decision and record it on the version.

        The decision's time is taken before the registry writes (tags, history, timeline plot): the traffic
        has already moved, and the time to rollback is what the users saw, not how long the records took.
        """
        ROLLOUT_DECISIONS.labels(status).inc()
        self.outcome.status, self.outcome.reason, self.outcome.finished = status, reason, time.time()
        self.recorder.finish(status, reason)
        return self.outcome
