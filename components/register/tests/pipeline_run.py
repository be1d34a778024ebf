"""A candidate as the pipeline leaves it for the register step: a nested run, its files digest, the gate's tags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow import MlflowClient

from components.common import attest, modeling, tracking
from components.common.candidate import logged_files_digest
from components.common.profile import ReferenceProfile


@dataclass(frozen=True)
class Trained:
    """One pipeline run's winner: the pipeline (parent) run, the candidate run, its model and files digest."""

    parent: str
    run_id: str
    model_uri: str
    digest: str

    def decision(self, alias: str = "champion", reason: str = "test") -> dict[str, Any]:
        """Return the gate's decision JSON as the register step gets it."""
        winner = {
            "name": "sklearn",
            "run_id": self.run_id,
            "model_uri": self.model_uri,
            "metrics": {"roc_auc": 0.99},
            "task": "binary",
            "files_digest": self.digest,
        }
        return {"passed": True, "alias": alias, "reason": reason, "winner": winner}


def trained(
    client: MlflowClient, experiment_id: str, model: Any, features: Any, profile: ReferenceProfile, *, won: bool = True
) -> Trained:
    """Log `model` as the candidate of a fresh pipeline run, as train_candidate does, and record the gate on it.

    `won=False` records another run as the gate's winner.
    """
    parent = client.create_run(experiment_id).info.run_id
    with mlflow.start_run(experiment_id=experiment_id, nested=True, parent_run_id=parent) as run:
        model_uri = modeling.log_model(model, features, profile, "sklearn")
        digest = logged_files_digest(model_uri)
        mlflow.set_tag(attest.TAG_FILES_DIGEST, digest)
    client.set_tag(parent, tracking.TAG_DECISION, "passed")
    client.set_tag(parent, tracking.TAG_REASON, "no champion yet: sklearn becomes champion directly")
    client.set_tag(parent, tracking.TAG_WINNER, "sklearn")
    client.set_tag(parent, attest.TAG_PRIMARY, "roc_auc")
    client.set_tag(parent, attest.TAG_MARGIN, "0.01")
    client.set_tag(parent, attest.TAG_WINNER_RUN, run.info.run_id if won else "another-run")
    client.log_metric(parent, "winner_roc_auc", 0.99)
    return Trained(parent, run.info.run_id, model_uri, digest)
