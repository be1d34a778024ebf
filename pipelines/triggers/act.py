"""One trigger, end to end: settle the last run, apply the guard rails, claim, start, record.

This is what the receiver (and later the local CT loop) calls for every trigger; it knows neither HTTP nor
kfp, only a `TriggerRecord` and a `Starter`, so its rules are tested with a real MLflow and a fake command.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from pipelines.triggers.policy import COALESCE, IGNORE, Decision, Guardrails, Trigger, decide
from pipelines.triggers.record import STARTING, TriggerRecord
from pipelines.triggers.start import FAILED, SUCCEEDED, Starter, StartError

START_FAILED = "start_failed"


@dataclass(frozen=True)
class Outcome:
    """What became of one trigger: the decision, the run it started (if any) and its record's run id."""

    trigger: Trigger
    decision: Decision
    run: str
    record_id: str


class Actor:
    """Applies the policy to triggers one at a time (a lock per process; the registry lease across processes)."""

    def __init__(self, record: TriggerRecord, starter: Starter, rails: Guardrails) -> None:
        self.record, self.starter, self.rails = record, starter, rails
        self.lock = threading.Lock()

    def settle(self, now: datetime) -> None:
        """Record the end of the run holding the lease, when its starter knows it ended."""
        lease = self.record.read().in_progress
        if lease is None or lease.run == STARTING:
            return
        state = self.starter.state(lease.run)
        if state in (SUCCEEDED, FAILED):
            self.record.finished(lease.run, state == SUCCEEDED, now)

    def act(self, trigger: Trigger, now: datetime | None = None) -> Outcome:
        """Decide on `trigger`, start a run when the rails allow it, and record the trigger either way."""
        with self.lock:
            now = now or datetime.now(UTC)
            self.settle(now)
            decision = decide(trigger, self.record.read(), self.rails, now)
            run = ""
            if decision.starts:
                decision, run = self._start(trigger, decision, now)
            return Outcome(trigger, decision, run, self.record.log(trigger, decision, run))

    def ignore(self, trigger: Trigger, reason: str) -> Outcome:
        """Record a trigger that asks for nothing (a resolved alert, another model's alert) and do nothing."""
        decision = Decision(IGNORE, reason)
        return Outcome(trigger, decision, "", self.record.log(trigger, decision))

    def _start(self, trigger: Trigger, decision: Decision, now: datetime) -> tuple[Decision, str]:
        lease = self.record.claim(self.rails, now)
        if lease is None:
            return Decision(COALESCE, "another receiver claimed the start at the same moment: coalesced"), ""
        try:
            run = self.starter.start(trigger, decision.action)
        except StartError as error:
            self.record.finished(lease.run, succeeded=False, now=now)
            return Decision(START_FAILED, str(error)), ""
        self.record.started(lease, run, now)
        return decision, run
