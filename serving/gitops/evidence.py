"""The registry evidence a promotion needs: what the source environment serves, and that its rollout succeeded.

The rollout controller writes `plinth.rollout.<environment>.status|reason|finished_at` on the MLflow
model version when it promotes or rolls back, and after a promotion points the alias `serving-<environment>`
at the version the stable now serves. A promotion moves that version (what the environment actually serves,
not what its overlay desires) and only when its status is `promoted`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.common.tracking import PROMOTED, serving_alias


class EvidenceError(RuntimeError):
    """The registry does not show a successful rollout; the message says what it shows instead."""


@dataclass(frozen=True)
class RolloutEvidence:
    """A finished, successful rollout of one model version in one environment."""

    model_name: str
    version: str
    environment: str
    reason: str
    finished_at: str

    def describe(self) -> str:
        """Return the evidence as one line for the commit message and the summary."""
        return (
            f"plinth.rollout.{self.environment}.status={PROMOTED} "
            f"finished_at={self.finished_at or 'unknown'} reason={self.reason or 'none recorded'}"
        )


def served_version(client: MlflowClient, model_name: str, environment: str) -> str:
    """Return the version `environment` serves after its last promotion, or raise EvidenceError."""
    alias = serving_alias(environment)
    try:
        aliases = client.get_registered_model(model_name).aliases
    except MlflowException as error:
        raise EvidenceError(f"cannot read model {model_name} from the registry: {error.message}") from error
    if alias not in aliases:
        raise EvidenceError(
            f"{environment} has not promoted anything yet: {model_name} has no alias {alias} "
            f"(the rollout controller sets it when a rollout in {environment} is promoted)"
        )
    return str(aliases[alias])


def successful_rollout(client: MlflowClient, model_name: str, version: str, environment: str) -> RolloutEvidence:
    """Return the evidence that `version` finished its rollout in `environment`, or raise EvidenceError."""
    try:
        tags = client.get_model_version(model_name, version).tags
    except MlflowException as error:
        raise EvidenceError(
            f"cannot read version {version} of {model_name} from the registry: {error.message}"
        ) from error
    prefix = f"plinth.rollout.{environment}"
    status = tags.get(f"{prefix}.status")
    reason = tags.get(f"{prefix}.reason", "")
    if status is None:
        raise EvidenceError(
            f"version {version} of {model_name} has no {prefix}.status tag: its {environment} rollout has not finished"
        )
    if status != PROMOTED:
        raise EvidenceError(
            f"version {version} of {model_name} has {prefix}.status={status}"
            f"{f' ({reason})' if reason else ''}; only a promoted rollout can move on"
        )
    return RolloutEvidence(model_name, version, environment, reason, tags.get(f"{prefix}.finished_at", ""))
