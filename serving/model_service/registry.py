"""Find the registered model the settings point to and fetch its files once per machine.

What the service needs to know before it can define its API comes from here: the input columns (the
signature), the reference profile of a plinth model (absent for anyone else's model), and the version's
registry tags (`plinth.task`). Before any of the fetched files is read, they are checked against the
signature the register step stored with them (`components/common/signing.py`), and the loader their MLmodel
names against the allow-list (`components/common/loaders.py`); a version that fails either is refused, and
nothing of it is loaded or imported.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mlflow import MlflowClient
from mlflow.models import Model

from components.common import signing
from components.common.modeling import METADATA_KEY, profile_from_metadata
from components.common.profile import ReferenceProfile
from components.common.redact import redact
from serving.model_service.columns import Column, read_columns
from serving.model_service.settings import Settings


class ModelLoadError(RuntimeError):
    """The configured model cannot be found, fetched or used; the message says which and why."""


class ModelRefused(ModelLoadError):
    """The version's files failed their signature check (or have none where one is required): never loaded."""

    def __init__(self, name: str, version: str, verdict: signing.Verdict) -> None:
        super().__init__(verdict.message)
        self.name, self.version, self.verdict = name, version, verdict

    def stand_in(self) -> ModelRef:
        """Return what the service is defined from instead: the version's name, no files, no inputs."""
        return ModelRef(self.name, self.version, Path(), Model(), [], verdict=self.verdict)


@dataclass(frozen=True)
class ModelRef:
    """A registered model version fetched to a local directory, with what the API is built from."""

    name: str
    version: str
    local_dir: Path
    mlmodel: Model
    columns: list[Column]
    profile: ReferenceProfile | None = None
    tags: dict[str, str] = field(default_factory=dict)
    verdict: signing.Verdict = signing.NOT_CHECKED

    @property
    def is_plinth(self) -> bool:
        """Return True for plinth's own models (MLmodel metadata with a reference profile): the fast path."""
        return self.profile is not None


def _cache_dir(settings: Settings, version: str, identity: str) -> Path:
    """Return where a version is kept locally: versions are immutable, so one fetch per machine suffices.

    `identity` (the version's source and creation time) is part of the key: a store deleted and recreated
    at the same URI reuses version numbers for different models.
    """
    store = hashlib.sha256(f"{settings.registry_uri}|{identity}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "plinth-models" / store / settings.model_name / version


def _download(settings: Settings, client: MlflowClient, version: str, identity: str) -> Path:
    """Fetch the model directory once; concurrent workers race safely through an atomic rename.

    The version's concrete artifact location is resolved with our own client: MLflow's `models:/`
    resolver reads the process-wide registry URI, whatever registry it is given, and would open (and
    create) a SQLite file in the working directory.
    """
    import mlflow

    target = _cache_dir(settings, version, identity)
    if (target / "MLmodel").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # left by a fetch that broke off: never complete, never served
        shutil.rmtree(target, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".fetch-"))
    try:
        fetched = mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(settings.model_name, version),
            dst_path=str(staging),
            tracking_uri=settings.tracking_uri,
        )
        os.replace(fetched, target)
    except OSError:
        if not (target / "MLmodel").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def fetch(settings: Settings) -> ModelRef:
    """Resolve the alias (or pinned version) in the registry and fetch that version's files.

    Raises:
        ModelRefused: the files fail their signature check, or are unsigned where a signature is required, or
            their loader is not plinth's nor allow-listed (`components/common/loaders.py`).
        ModelLoadError: the registry, the model, the alias or the version is missing, or the model has no
            signature the service can serve (the message names the column); the registry URI in it is redacted.
    """
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)
    try:
        if settings.model_version:
            found = client.get_model_version(settings.model_name, settings.model_version)
        else:
            found = client.get_model_version_by_alias(settings.model_name, settings.model_alias)
        version = str(found.version)
        tags = {str(key): str(value) for key, value in (found.tags or {}).items()}
        local_dir = _download(settings, client, version, f"{found.source}|{found.creation_timestamp}")
        # Every start checks the files it is about to read, cached ones included: the cache is a directory too.
        verdict = signing.check(
            local_dir, tags, settings.verify_key, settings.require_signature, settings.model_name, version
        )
        if verdict.refused:
            raise ModelRefused(settings.model_name, version, verdict)
        # Before anything imports the model's loader (its MLmodel is read as YAML only).
        refusal = settings.loader_policy.check(local_dir, settings.model_name, version)
        if refusal is not None:
            raise ModelRefused(settings.model_name, version, refusal)
        mlmodel = Model.load(str(local_dir / "MLmodel"))
        metadata = mlmodel.metadata or {}
        profile = profile_from_metadata(metadata, str(local_dir)) if METADATA_KEY in metadata else None
        columns = read_columns(mlmodel.signature, profile)
    except (MlflowException, OSError, ValueError, KeyError, TypeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        shown = redact(f"cannot load {settings.model_selector} from {settings.registry_uri}: {reason}")
        raise ModelLoadError(shown) from error
    return ModelRef(settings.model_name, version, local_dir, mlmodel, columns, profile, tags, verdict)
