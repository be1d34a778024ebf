"""The guard rails between a trigger and a training run, as plain data and one pure function.

A noisy signal (an alert that flaps, a schedule that overlaps a drift alert) must not become a retraining
storm: `decide` returns `start` only when no run or rollout is in progress (else the trigger is coalesced
into it), the last failure is older than its back-off, today's runs are under the daily maximum and the last
start is older than the cool-down. Every other answer says which rail held and until when.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from components.common.duration import parse_duration

KINDS = ("schedule", "input_drift", "new_data", "performance_decay")
START, COALESCE, COOL_DOWN, DAILY_MAX, BACKOFF, IGNORE = (
    "start",
    "coalesce",
    "cool_down",
    "daily_max",
    "backoff",
    "ignore",
)


@dataclass(frozen=True)
class Guardrails:
    """How often a model may be retrained; the defaults suit a model retrained at most a few times a day."""

    cool_down: timedelta = timedelta(hours=6)
    max_runs_per_day: int = 3
    # Hold-off after a failed run, doubled per consecutive failure up to `max_backoff`: no retry storm.
    failure_backoff: timedelta = timedelta(minutes=30)
    max_backoff: timedelta = timedelta(hours=24)
    # An in-progress marker older than this is stale (a crashed receiver or run) and no longer coalesces.
    lease: timedelta = timedelta(hours=4)

    @classmethod
    def load(cls, path: Path) -> Guardrails:
        """Read `coolDown`, `maxRunsPerDay`, `failureBackoff`, `maxBackoff`, `lease` from a YAML file.

        Raises:
            ValueError: an unknown key or a bad value; the message names it.
        """
        raw = yaml.safe_load(path.read_text()) or {}
        keys = {"coolDown": "cool_down", "failureBackoff": "failure_backoff", "maxBackoff": "max_backoff"}
        keys |= {"lease": "lease", "maxRunsPerDay": "max_runs_per_day"}
        unknown = sorted(set(raw) - set(keys))
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(keys))}")
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key == "maxRunsPerDay":
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{path}: maxRunsPerDay must be a whole number >= 0, got {value!r}")
                values[keys[key]] = value
            else:
                values[keys[key]] = parse_duration(value)
        return cls(**values)


@dataclass(frozen=True)
class Trigger:
    """A signal that asks for a retrain: what kind, why, the values that fired it and when."""

    kind: str
    reason: str
    values: dict[str, float] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        """Refuse a kind no rail knows, so a typo cannot bypass the policy under a new name."""
        if self.kind not in KINDS:
            raise ValueError(f"trigger kind {self.kind!r}: expected one of {', '.join(KINDS)}")

    def to_json(self, decision: str = START) -> str:
        """Return the trigger as the pipeline's `trigger` parameter (register turns it into version tags)."""
        return json.dumps(
            {
                "kind": self.kind,
                "reason": self.reason,
                "values": self.values,
                "time": self.at.isoformat(timespec="seconds"),
                "decision": decision,
            },
            sort_keys=True,
        )


@dataclass(frozen=True)
class Lease:
    """A run (or a start being made) that holds the model: later triggers coalesce into it until it expires."""

    token: str
    run: str
    since: datetime
    expires: datetime


@dataclass(frozen=True)
class History:
    """What the registry says happened to this model's retraining so far."""

    last_started: datetime | None = None
    runs_by_day: dict[date, int] = field(default_factory=dict)
    in_progress: Lease | None = None
    rollout_in_progress: str | None = None
    last_failed: datetime | None = None
    consecutive_failures: int = 0


@dataclass(frozen=True)
class Decision:
    """What happens to one trigger, with the one-line reason that is recorded beside it."""

    action: str
    reason: str

    @property
    def starts(self) -> bool:
        """Return whether a run is started for the trigger."""
        return self.action == START


def _at(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def backoff(rails: Guardrails, failures: int) -> timedelta:
    """Return the hold-off after `failures` consecutive failed runs (doubling, capped)."""
    if failures <= 0:
        return timedelta(0)
    return min(rails.failure_backoff * 2 ** min(failures - 1, 30), rails.max_backoff)


def decide(trigger: Trigger, history: History, rails: Guardrails, now: datetime) -> Decision:
    """Return whether `trigger` starts a run now, and if not, which guard rail held it."""
    lease = history.in_progress
    if lease is not None and lease.expires > now:
        return Decision(COALESCE, f"run {lease.run} in progress since {_at(lease.since)}: {trigger.kind} coalesced")
    if history.rollout_in_progress is not None:
        return Decision(COALESCE, f"rollout of v{history.rollout_in_progress} in progress: {trigger.kind} coalesced")
    if history.last_failed is not None:
        until = history.last_failed + backoff(rails, history.consecutive_failures)
        if until > now:
            return Decision(
                BACKOFF,
                f"{history.consecutive_failures} failed run(s), last at {_at(history.last_failed)}: "
                f"held until {_at(until)}",
            )
    today = history.runs_by_day.get(now.astimezone(UTC).date(), 0)
    if today >= rails.max_runs_per_day:
        return Decision(DAILY_MAX, f"{today} run(s) today, the maximum is {rails.max_runs_per_day} per UTC day")
    if history.last_started is not None and history.last_started + rails.cool_down > now:
        return Decision(
            COOL_DOWN,
            f"last run started {_at(history.last_started)}, cool-down {rails.cool_down} until "
            f"{_at(history.last_started + rails.cool_down)}",
        )
    stale = f" (lease of run {lease.run} expired {_at(lease.expires)})" if lease is not None else ""
    return Decision(START, f"{trigger.kind}: {trigger.reason}{stale}")
