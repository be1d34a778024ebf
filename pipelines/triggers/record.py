"""Where the trigger history lives: tags on the `plinth-triggers` MLflow experiment, and one run per trigger.

The receiver keeps no state of its own, so a restarted receiver, or a second replica, reads the same
history. The experiment carries the guard rails' state of each model it records for (`plinth.trigger.
last_started`, `runs_by_day`, `in_progress`, `last_failed`, `consecutive_failures`, each suffixed with
`/<model>`); every trigger, whatever was decided, becomes a finished run in it tagged with its kind, reason,
values, time, decision and the run it started. The history is kept off the registered model on purpose: a
login that may write the model's tags may also move its aliases and forge the tags promotion trusts, so the
receiver's login needs EDIT on this experiment and only READ on the model (to see a rollout in progress).

Two receivers racing: MLflow has no compare-and-set on tags, so `claim` is an optimistic check-then-set.
It writes an in-progress lease with a fresh token, reads the tag back and starts only if its own token is
there. A receiver that lost the write sees the other token and coalesces. Two receivers that both read
"free" before either wrote can still both start; this narrows the window to one registry round-trip, and
the deployment closes it by running one replica behind Alertmanager's own deduplication (an HA
Alertmanager cluster sends each notification once). The lease expires (`Guardrails.lease`), so a crashed
receiver or run does not block retraining forever.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta

from mlflow import MlflowClient

from components.common.tracking import IN_PROGRESS as ROLLOUT_IN_PROGRESS
from components.register.core import TRIGGER_TAG_PREFIX, trigger_tags
from pipelines.triggers.policy import Decision, Guardrails, History, Lease, Trigger

LAST_STARTED = TRIGGER_TAG_PREFIX + "last_started"
RUNS_BY_DAY = TRIGGER_TAG_PREFIX + "runs_by_day"
LEASE = TRIGGER_TAG_PREFIX + "in_progress"
LAST_FAILED = TRIGGER_TAG_PREFIX + "last_failed"
FAILURES = TRIGGER_TAG_PREFIX + "consecutive_failures"
DECISION_REASON = TRIGGER_TAG_PREFIX + "decision_reason"
STARTED_RUN = TRIGGER_TAG_PREFIX + "started_run"
MODEL_TAG = TRIGGER_TAG_PREFIX + "model"
EXPERIMENT = "plinth-triggers"
STARTING = "starting"
# Days of run counts kept per model: enough for "today", small enough for a tag.
DAYS_KEPT = 7
# Versions checked for a rollout in progress: a rollout is always of one of the newest versions.
RECENT_VERSIONS = 5
ROLLOUT_STATUS = re.compile(r"^plinth\.rollout\.[^.]+\.status$")
UNSAFE_KEY_CHARS = re.compile(r"[^\w.\- ]")


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


class TriggerRecord:
    """The retraining history of one registered model, read and written through MLflow."""

    def __init__(self, client: MlflowClient, model_name: str, experiment: str = EXPERIMENT) -> None:
        self.client, self.model_name, self.experiment = client, model_name, experiment
        self._experiment: str | None = None

    def _experiment_id(self) -> str:
        if self._experiment is None:
            found = self.client.get_experiment_by_name(self.experiment)
            self._experiment = found.experiment_id if found else self.client.create_experiment(self.experiment)
        return str(self._experiment)

    def _key(self, key: str) -> str:
        """Return the experiment tag of `key` for this model (tag keys allow word characters, . - / and spaces)."""
        return f"{key}/{UNSAFE_KEY_CHARS.sub('_', self.model_name)}"

    def _tags(self) -> dict[str, str]:
        tags = self.client.get_experiment(self._experiment_id()).tags
        keys = (LAST_STARTED, RUNS_BY_DAY, LEASE, LAST_FAILED, FAILURES)
        return {key: tags[self._key(key)] for key in keys if self._key(key) in tags}

    def _set(self, key: str, value: str) -> None:
        self.client.set_experiment_tag(self._experiment_id(), self._key(key), value)

    def rollout_in_progress(self) -> str | None:
        """Return the version whose rollout is in progress in any environment, else None."""
        versions = self.client.search_model_versions(
            f"name = '{self.model_name}'", max_results=RECENT_VERSIONS, order_by=["version_number DESC"]
        )
        for version in versions:
            if any(ROLLOUT_STATUS.match(key) and value == ROLLOUT_IN_PROGRESS for key, value in version.tags.items()):
                return str(version.version)
        return None

    def read(self) -> History:
        """Return the history the guard rails decide on (an empty one for a model never triggered)."""
        tags = self._tags()
        lease = json.loads(tags[LEASE]) if tags.get(LEASE) else None
        return History(
            last_started=_time(tags.get(LAST_STARTED)),
            runs_by_day={date.fromisoformat(day): n for day, n in json.loads(tags.get(RUNS_BY_DAY, "{}")).items()},
            in_progress=Lease(
                lease["token"],
                lease["run"],
                datetime.fromisoformat(lease["since"]),
                datetime.fromisoformat(lease["expires"]),
            )
            if lease
            else None,
            rollout_in_progress=self.rollout_in_progress(),
            last_failed=_time(tags.get(LAST_FAILED)),
            consecutive_failures=int(tags.get(FAILURES, "0")),
        )

    def _write_lease(self, lease: Lease | None) -> None:
        if lease is None:
            self._set(LEASE, "")
            return
        value = {"token": lease.token, "run": lease.run, "since": _iso(lease.since), "expires": _iso(lease.expires)}
        self._set(LEASE, json.dumps(value))

    def claim(self, rails: Guardrails, now: datetime) -> Lease | None:
        """Take the in-progress lease for a start; None when another receiver's token is there on re-read."""
        lease = Lease(uuid.uuid4().hex, STARTING, now, now + rails.lease)
        self._write_lease(lease)
        held = self.read().in_progress
        return lease if held is not None and held.token == lease.token else None

    def started(self, lease: Lease, run: str, now: datetime) -> None:
        """Record that `run` started under `lease`: it now holds the lease and counts for today."""
        self._write_lease(Lease(lease.token, run, lease.since, lease.expires))
        counts = {day.isoformat(): n for day, n in self.read().runs_by_day.items()}
        today = now.astimezone(UTC).date()
        counts[today.isoformat()] = counts.get(today.isoformat(), 0) + 1
        kept = {day: n for day, n in counts.items() if date.fromisoformat(day) > today - timedelta(days=DAYS_KEPT)}
        self._set(RUNS_BY_DAY, json.dumps(kept, sort_keys=True))
        self._set(LAST_STARTED, _iso(now))

    def finished(self, run: str, succeeded: bool, now: datetime) -> None:
        """Record how `run` ended: release its lease; a failure starts (or lengthens) the back-off."""
        history = self.read()
        if history.in_progress is not None and history.in_progress.run == run:
            self._write_lease(None)
        if succeeded:
            self._set(FAILURES, "0")
        else:
            self._set(FAILURES, str(history.consecutive_failures + 1))
            self._set(LAST_FAILED, _iso(now))

    def log(self, trigger: Trigger, decision: Decision, run: str = "") -> str:
        """Record one trigger and what was decided as a finished run of the triggers experiment; return its id."""
        experiment_id = self._experiment_id()
        tags = {
            **trigger_tags(trigger.to_json(decision.action)),
            DECISION_REASON: decision.reason,
            MODEL_TAG: self.model_name,
        }
        if run:
            tags[STARTED_RUN] = run
        # Started now, when it was decided: the trigger's own time (an alert's startsAt) is a tag.
        logged = self.client.create_run(experiment_id, tags=tags, run_name=f"{trigger.kind} {decision.action}")
        self.client.set_terminated(logged.info.run_id)
        return str(logged.info.run_id)
