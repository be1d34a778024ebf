"""The in-cluster controller's record of progress, kept in one ConfigMap it owns and read back every loop.

Two keys: `stableVersion` (what the stable track serves: the stable pods read it through a configMapKeyRef,
so a restarted or evicted stable pod loads the promoted version, never Git's desired one nor a moved alias)
and `status` (JSON: phase, canary version, weight, step, failed checks, rejected versions and the manifest
digests of their files, last outcome). A record written before digests were kept reads as one without any.
A retry request is the annotation `plinth.dev/retry: "<version>"`, which the controller clears when it
starts that version's new rollout. Outcomes also go to MLflow tags; this record is what survives the
controller's own restarts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

STABLE_KEY, STATUS_KEY = "stableVersion", "status"
RETRY_ANNOTATION = "plinth.dev/retry"

# Phases, after Flagger's: the first version an environment sees serves without analysis (initialized);
# a rollout is progressing, then promoting; it ends succeeded, failed (rolled back) or canceled.
INITIALIZED, PROGRESSING, PROMOTING = "initialized", "progressing", "promoting"
SUCCEEDED, FAILED, CANCELED = "succeeded", "failed", "canceled"
RUNNING = (PROGRESSING, PROMOTING)
# The record is one ConfigMap (1 MiB at most): it keeps the latest rejections, each reason cut short. Older ones
# are still on the registry's versions (`plinth.rejected`), which the loop asks too.
MAX_REJECTED, MAX_REASON = 50, 500


@dataclass
class Outcome:
    """How the last rollout ended, and whether the registry has recorded it yet."""

    version: str
    status: str
    reason: str
    at: str
    recorded: bool = False


@dataclass
class RolloutStatus:
    """Progress of the current (or last) rollout; every field survives a controller restart."""

    phase: str = ""
    canary_version: str | None = None
    stable_at_start: str | None = None
    step: int = 0
    weight: int = 0
    failed_checks: dict[str, int] = field(default_factory=dict)
    # What the analysis has summed over the rollout (both tracks' predictions, the stable's p99): at 100 %
    # the stable gets no traffic, so a restarted controller could not rebuild it.
    baseline: dict[str, Any] = field(default_factory=dict)
    iterations: int = 0
    # The pre-traffic check passed (the canary answered its reference rows); nothing reaches it before.
    checked: bool = False
    # In the shadow phase (weight 0, the route mirrors to the canary) since `shadow_since`.
    shadow: bool = False
    shadow_since: float = 0.0
    started_at: float = 0.0
    # When the stable started rolling out the promoted version: the deadline of a promotion runs from here.
    promoting_since: float = 0.0
    last_transition: str = ""
    message: str = ""
    resumed: int = 0
    # Versions rolled back in this environment, with the reason: never started again until a retry.
    rejected: dict[str, str] = field(default_factory=dict)
    # The manifest digest (`plinth.signature.digest`) of each rolled-back version's files -> that version: the
    # same files registered again as another version are rejected too.
    rejected_digests: dict[str, str] = field(default_factory=dict)
    # The digest of the canary's files, read when its rollout started (None: unsigned, or not known).
    canary_digest: str | None = None
    # A desired version held back as a copy of a rolled-back one's files (what `make retry` retries by default).
    held: str | None = None
    outcome: Outcome | None = None

    def reject(self, version: str, reason: str, digest: str | None = None) -> None:
        """Record `version` (and its files' `digest`) as rolled back here, keeping the latest MAX_REJECTED of each."""
        self.rejected.pop(version, None)
        self.rejected[version] = reason[:MAX_REASON]
        while len(self.rejected) > MAX_REJECTED:
            self.rejected.pop(next(iter(self.rejected)))
        if digest:
            self.rejected_digests.pop(digest, None)
            self.rejected_digests[digest] = version
            while len(self.rejected_digests) > MAX_REJECTED:
                self.rejected_digests.pop(next(iter(self.rejected_digests)))

    def rejected_as(self, digest: str | None, version: str) -> str | None:
        """Return the other version rolled back here whose files had `digest`, None when there is none."""
        earlier = self.rejected_digests.get(digest) if digest else None
        return earlier if earlier is not None and earlier != version else None

    def forgive(self, version: str, digest: str | None) -> None:
        """A retry of `version`: forget its rejection, and that of its files' digest."""
        self.rejected.pop(version, None)
        if digest:
            self.rejected_digests.pop(digest, None)

    @classmethod
    def from_json(cls, text: str) -> RolloutStatus:
        """Read a status written by `to_json`; unknown keys (a newer controller's) are ignored."""
        data: dict[str, Any] = json.loads(text) if text else {}
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if values.get("outcome"):
            values["outcome"] = Outcome(**values["outcome"])
        return cls(**values)

    def to_json(self) -> str:
        """Return the status as stable, readable JSON."""
        return json.dumps(asdict(self), indent=1, sort_keys=True)


@dataclass
class State:
    """The whole record: what the stable serves, the rollout status, a pending retry, the resourceVersion."""

    stable_version: str | None = None
    status: RolloutStatus = field(default_factory=RolloutStatus)
    retry: str | None = None
    resource_version: str | None = None

    @classmethod
    def from_configmap(cls, data: dict[str, str] | None, annotations: dict[str, str] | None, version: str) -> State:
        """Build the state from a ConfigMap's data, annotations and resourceVersion."""
        data = data or {}
        return cls(
            stable_version=data.get(STABLE_KEY) or None,
            status=RolloutStatus.from_json(data.get(STATUS_KEY, "")),
            retry=(annotations or {}).get(RETRY_ANNOTATION) or None,
            resource_version=version,
        )

    def data(self) -> dict[str, str]:
        """Return the ConfigMap data that records this state."""
        data = {STATUS_KEY: self.status.to_json()}
        if self.stable_version:
            data[STABLE_KEY] = self.stable_version
        return data
