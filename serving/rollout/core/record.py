"""Registry side of a rollout: the alias move, and a history on the canary's model version.

Only the alias move may fail the promotion; every other write is best effort, because a rollout that
cannot write a tag must still end safe. Tags are what `make promote` reads; the JSON artifact on the
rollout's own run (experiment `plinth-rollouts`) is the full history (which version served when, weights,
check results, why it changed), and a PNG beside it draws that history as a timeline (`timeline.py`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient

from components.common.redact import first_line
from components.common.tracking import (
    CHALLENGER,
    CHAMPION,
    IN_PROGRESS,
    REJECTED_TAG,
    ROLLED_BACK,
    ensure_experiment,
    serving_alias,
)

LOG = logging.getLogger("plinth.rollout")
# The experiment every rollout's history (JSON) and timeline (PNG) is logged to, one run per rollout.
ROLLOUT_EXPERIMENT = "plinth-rollouts"


def now_iso() -> str:
    """Return the current UTC time as ISO-8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class RolloutRecorder:
    """Writes a rollout's status, reason and history onto the canary's MLflow model version."""

    def __init__(self, client: MlflowClient, model_name: str, version: str, environment: str) -> None:
        self.client = client
        self.model_name = model_name
        self.version = version
        self.prefix = f"plinth.rollout.{environment}"
        self.environment = environment
        self.history: list[dict[str, Any]] = []

    def tag(self, key: str, value: str) -> bool:
        """Set one tag on the canary's version; log and go on when the registry does not answer."""
        try:
            self.client.set_model_version_tag(self.model_name, self.version, key, value)
            return True
        except Exception as error:  # any registry failure is logged, the rollout goes on
            LOG.warning("registry write failed (%s=%s): %s", key, value, first_line(error))
            return False

    def event(self, kind: str, **fields: Any) -> None:
        """Append one entry to the history kept in memory."""
        self.history.append({"at": now_iso(), "event": kind, **fields})

    def begin(self, stable_version: str | None) -> None:
        """Mark the version as in progress."""
        self.event("started", canary_version=self.version, stable_version=stable_version)
        self.tag(f"{self.prefix}.status", IN_PROGRESS)
        self.tag(f"{self.prefix}.reason", "")
        self.tag(f"{self.prefix}.started_at", now_iso())

    def weight(self, weight: int) -> None:
        """Record the current canary weight."""
        self.event("weight", weight=weight)
        self.tag(f"{self.prefix}.weight", str(weight))

    def move_champion(self) -> None:
        """Point `champion` at the canary's version (one registry call: it moves or it does not)."""
        self.client.set_registered_model_alias(self.model_name, CHAMPION, self.version)
        try:
            self.client.delete_registered_model_alias(self.model_name, CHALLENGER)
        except Exception as error:  # a stale challenger alias is harmless
            LOG.warning("could not clear alias %s: %s", CHALLENGER, first_line(error))

    def move_serving(self, champion_too: bool) -> None:
        """Point `serving-<environment>` at the version; with `champion_too`, `champion` as well, forward only.

        Several environments promote the same versions at different times: prod promoting v3 after staging
        promoted v4 must not move `champion` (what training gates against) back to v3. `challenger` is
        cleared only when it names this version. Each alias move is one registry call.
        """
        self.client.set_registered_model_alias(self.model_name, serving_alias(self.environment), self.version)
        if not champion_too:
            return
        aliases = self.client.get_registered_model(self.model_name).aliases
        champion = aliases.get(CHAMPION)
        if champion is None or int(champion) < int(self.version):
            self.client.set_registered_model_alias(self.model_name, CHAMPION, self.version)
        if str(aliases.get(CHALLENGER)) == self.version:
            self.client.delete_registered_model_alias(self.model_name, CHALLENGER)

    def last_evidence(self) -> dict[str, Any]:
        """Return each check's comparison with the stable at the last judged interval (check name -> evidence).

        The decision's own evidence: which bound was crossed (or that none was), its value, the sample sizes.
        """
        for event in reversed(self.history):
            if event["event"] == "analysis":
                return {c["name"]: c["evidence"] for c in event.get("checks", []) if c.get("evidence")}
        return {}

    def finish(self, status: str, reason: str) -> bool:
        """Write the outcome tags and the history artifact; a rolled-back version is also rejected.

        Returns whether the status tag was written (the registry answered).
        """
        self.event(status, reason=reason, evidence=self.last_evidence())
        finished = now_iso()
        recorded = self.tag(f"{self.prefix}.status", status)
        self.tag(f"{self.prefix}.reason", reason[:4000])
        self.tag(f"{self.prefix}.finished_at", finished)
        if status == ROLLED_BACK:
            self.tag(REJECTED_TAG, "true")
            self.tag(f"{REJECTED_TAG}.reason", reason[:4000])
        self.save_history(finished)
        return recorded

    def save_history(self, finished: str) -> None:
        """Log the history as JSON in a run of the rollouts' own experiment, its timeline as a PNG beside it; tag both.

        Not on the version's training run: the controller's registry login may edit the model (aliases, tags),
        not the training experiment, whose runs are the evidence the gate and the signature rest on. It creates
        ROLLOUT_EXPERIMENT and so owns it; the run names the version and its training run.
        """
        try:
            version = self.client.get_model_version(self.model_name, self.version)
            run_id = self.client.create_run(
                ensure_experiment(self.client, ROLLOUT_EXPERIMENT, self.client.tracking_uri),
                run_name=f"{self.model_name} v{self.version} {self.environment}",
                tags={
                    "plinth.kind": "rollout",
                    "plinth.model": self.model_name,
                    "plinth.version": self.version,
                    "plinth.environment": self.environment,
                    "plinth.training_run": version.run_id or "",
                },
            ).info.run_id
            stem = f"rollout/{self.environment}-v{self.version}-{finished.replace(':', '')}"
            self.client.log_text(run_id, json.dumps(self.history, indent=1), f"{stem}.json")
        except Exception as error:  # the tags already carry the outcome
            LOG.warning("could not save the rollout history: %s", first_line(error))
            return
        self.tag(f"{self.prefix}.history", f"runs:/{run_id}/{stem}.json")
        self.save_timeline(run_id, f"{stem}-timeline.png")
        self.client.set_terminated(run_id)

    def save_timeline(self, run_id: str, path: str) -> None:
        """Draw the history (weight, checks, decision) and log the PNG; a failure to draw is only logged.

        Imported here, not at the top: matplotlib stays out of the controller's start-up until a rollout ends.
        """
        try:
            from serving.rollout.core.timeline import timeline_figure

            figure = timeline_figure(self.history, f"{self.model_name} v{self.version} in {self.environment}")
            self.client.log_figure(run_id, figure, path)
        except Exception as error:  # the JSON history holds the same facts
            LOG.warning("could not save the rollout timeline: %s", first_line(error))
            return
        self.tag(f"{self.prefix}.timeline", f"runs:/{run_id}/{path}")
