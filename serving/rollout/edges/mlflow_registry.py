"""The reconcile loop's registry edge: aliases, rejections in one environment, model facts, outcome recorders.

Reads never raise: a registry that does not answer resolves no alias, knows no rejection and no profile,
and the loop acts on its own record (it never starts a rollout it cannot resolve).
"""

from __future__ import annotations

import logging
from pathlib import Path

from mlflow import MlflowClient

from components.common.redact import redact
from components.common.signing import UNVERIFIED
from components.common.tracking import ROLLED_BACK
from serving.rollout.core.record import RolloutRecorder
from serving.rollout.edges.inspect_model import (
    ModelFacts,
    files_digest,
    inspect_version,
    task_mismatch,
    verify_version,
)
from serving.rollout.edges.pre_traffic import ReferenceRows, reference_rows

LOG = logging.getLogger("plinth.rollout")


def first_line(error: Exception) -> str:
    """Return an error's first line, short enough for a log line."""
    return redact((str(error).splitlines() or [type(error).__name__])[0])[:200]


class MlflowRegistry:
    """One model in one environment, as the loop sees it in MLflow."""

    def __init__(
        self,
        client: MlflowClient,
        tracking_uri: str,
        model_name: str,
        environment: str,
        verify_key: Path | None = None,
        require_signature: bool = False,
    ) -> None:
        self.client, self.tracking_uri = client, tracking_uri
        self.model_name, self.environment = model_name, environment
        # What a canary's files are checked with before any traffic: the model service's own settings.
        self.verify_key, self.require_signature = verify_key, require_signature
        # What a version's MLmodel says (task, profile) is read once; its files' signature is checked per rollout.
        self.known: dict[str, ModelFacts] = {}
        # The digest of each version's files (what a rejection by digest compares), computed once per version.
        self.digests: dict[str, str] = {}

    def resolve(self, alias: str) -> str | None:
        """Return the version `alias` points to, None when it points nowhere or the registry is down."""
        try:
            return str(self.client.get_model_version_by_alias(self.model_name, alias).version)
        except Exception as error:  # not found and unreachable alike: nothing to roll out
            LOG.warning("alias %s of %s not resolved: %s", alias, self.model_name, first_line(error))
            return None

    def rejected(self, version: str) -> str | None:
        """Return the recorded reason when `version`'s last rollout in this environment was rolled back."""
        prefix = f"plinth.rollout.{self.environment}"
        try:
            tags = self.client.get_model_version(self.model_name, version).tags
        except Exception as error:  # unknown here; the loop's own record still knows its rollbacks
            LOG.warning("tags of %s v%s not read: %s", self.model_name, version, first_line(error))
            return None
        if tags.get(f"{prefix}.status") != ROLLED_BACK:
            return None
        return tags.get(f"{prefix}.reason") or "rolled back (no reason recorded)"

    def digest(self, version: str) -> str | None:
        """Return the manifest digest of `version`'s files as trained (`files_digest`), None when unknown; once each."""
        if version not in self.digests:
            try:
                self.digests[version] = files_digest(self.client, self.tracking_uri, self.model_name, version)
            except Exception as error:  # unknown: only the record's rejections by version number apply
                LOG.warning("files of %s v%s not hashed: %s", self.model_name, version, first_line(error))
                return None
        return self.digests[version]

    def facts(self, version: str) -> ModelFacts | None:
        """Return what the registry says about `version` (task, profile), None when it cannot be read."""
        if version not in self.known:
            try:
                self.known[version] = inspect_version(self.client, self.tracking_uri, self.model_name, version)
            except Exception as error:  # unknown facts: no task check, and a missing drift gauge is no data
                LOG.warning("%s v%s not read: %s", self.model_name, version, first_line(error))
                return None
        return self.known[version]

    def has_profile(self, version: str) -> bool | None:
        """Return whether `version` carries a reference profile (None: not known)."""
        facts = self.facts(version)
        return facts.has_profile if facts else None

    def reference(self, version: str) -> ReferenceRows:
        """Return the rows (and stored outputs) the pre-traffic check asks `version`'s canary (none: not known)."""
        facts = self.facts(version)
        return reference_rows(facts) if facts else ReferenceRows([])

    def refusal(self, stable: str, canary: str) -> str | None:
        """Return why `canary` cannot replace `stable` (another task, files that fail their signature), else None."""
        stable_facts, canary_facts = self.facts(stable), self.facts(canary)
        mismatch = task_mismatch(stable_facts, canary_facts) if stable_facts and canary_facts else None
        return mismatch or self.verification_refusal(canary)

    def verification_refusal(self, version: str) -> str | None:
        """Return why `version`'s files must not be served (tampered, or unsigned where required), else None.

        Checked on every call, never cached: files can change after a first check. Files that cannot be
        fetched are not a refusal (a registry outage would otherwise record a rollback): the canary's own
        service checks them again before it reports ready.
        """
        try:
            verdict = verify_version(
                self.client, self.tracking_uri, self.model_name, version, self.verify_key, self.require_signature
            )
        except Exception as error:  # unknown, not refused: the canary pods verify for themselves
            LOG.warning("files of %s v%s not verified: %s", self.model_name, version, first_line(error))
            return None
        if verdict.result == UNVERIFIED:
            LOG.warning("%s", verdict.message)
        return verdict.message if verdict.refused else None

    def recorder(self, version: str) -> RolloutRecorder:
        """Return the recorder that writes `version`'s rollout tags and history in this environment."""
        return RolloutRecorder(self.client, self.model_name, version, self.environment)
