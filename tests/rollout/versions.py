"""The reconcile tests' registry: one real MLflow store of versions with a role each, built once per session.

Registering these versions (six models, one of them signed and then altered) is the slowest part of the
reconcile tests, so test_reconcile.py, test_reconcile_faults.py and test_reconcile_prometheus.py share one
(the `versions` fixture in conftest.py); each of them calls `forget_rollouts` after every test, which puts
the registry back as it was built.
"""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from components.common.tracking import CHAMPION, REJECTED_TAG, connect
from serving.bench.demo_model import register_plinth_model
from serving.embedded.train_drill import DrillData, register_drill_model
from serving.model_service.tests.custom_loader import log_marker_model

MODEL, SEED = "reconciled", 5


class Versions:
    """A real registry: v1 champion, v2 a better model, v3 a garbage one, v4 a regressor (another task), v5 signed
    at registration whose stored model.skops then had one byte changed, v6 a model with a loader module of its own
    (which writes a marker file when imported)."""

    def __init__(self, root: Path) -> None:
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.client: MlflowClient = connect(self.uri)
        self.champion = register_drill_model(self.uri, MODEL, seed=SEED, train_fraction=0.3, alias=CHAMPION)
        self.good = register_drill_model(self.uri, MODEL, seed=SEED)
        self.garbage = register_drill_model(self.uri, MODEL, seed=SEED, shuffle_labels=True)
        self.regressor = register_drill_model(self.uri, MODEL, seed=SEED, data=DrillData("sklearn:diabetes"))
        self.tampered = register_plinth_model(self.uri, MODEL, experiment="reconcile").version
        stored = Path(self.client.get_model_version_download_uri(MODEL, self.tampered).removeprefix("file://"))
        data = bytearray((stored / "model.skops").read_bytes())
        data[len(data) // 2] ^= 0x01
        (stored / "model.skops").write_bytes(bytes(data))
        self.own_loader = log_marker_model(self.uri, MODEL, root, alias=None, task=None)
        self.client.set_registered_model_alias(MODEL, CHAMPION, self.champion)
        # Versions a test registers on the way (copies of another version's files).
        self.extra: list[str] = []

    def copy_of(self, version: str) -> str:
        """Register `version`'s stored files again as a new version, as anyone who may write the registry could."""
        files = self.client.get_model_version_download_uri(MODEL, version)
        copy = str(self.client.create_model_version(MODEL, files).version)
        self.extra.append(copy)
        return copy

    def tags(self, version: str) -> dict[str, str]:
        return self.client.get_model_version(MODEL, version).tags

    def alias(self, name: str) -> str | None:
        found = self.client.get_registered_model(MODEL).aliases.get(name)
        return None if found is None else str(found)

    def forget_rollouts(self) -> None:
        """Remove every rollout tag and put `champion` back, so each test starts from the same registry."""
        for version in (self.champion, self.good, self.garbage, self.regressor, self.tampered, *self.extra):
            for key in list(self.tags(version)):
                if key.startswith("plinth.rollout.") or key.startswith(REJECTED_TAG):
                    self.client.delete_model_version_tag(MODEL, version, key)
        self.client.set_registered_model_alias(MODEL, CHAMPION, self.champion)
