"""What a rollout needs to know about a model version before it starts, read from the registry.

The task (to refuse a canary that solves another problem than the stable), whether the model carries a
reference profile (a canary without one scores no input drift, so that check does not apply), and what its
inputs look like (to make traffic that fits the served model: the profile, else the signature and input
example). plinth's own models carry all of it; a model logged by anyone else with `mlflow.sklearn.log_model`
has at most a signature and an input example, and every field says "unknown" rather than guess.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

from components.common import signing
from components.common.loaders import LOADER_REFUSED, MLMODEL_FILE, LoaderPolicy
from components.common.modeling import METADATA_KEY
from components.common.profile import ReferenceProfile
from components.common.redact import first_line
from components.common.task import TAG_TASK, Task

LOG = logging.getLogger("plinth.rollout")
PARENT_RUN_TAG = "mlflow.parentRunId"


@dataclass(frozen=True)
class InputColumn:
    """One input of the model signature: its name, MLflow type name (double, long, string…) and whether required."""

    name: str
    kind: str
    required: bool = True


@dataclass(frozen=True)
class ModelFacts:
    """One registered version as the rollout sees it; None (or empty) wherever the registry does not say."""

    name: str
    version: str
    task: str | None = None
    profile: ReferenceProfile | None = None
    inputs: tuple[InputColumn, ...] = ()
    example: pd.DataFrame | None = field(default=None, compare=False)
    # (source, target) that the training run recorded as its `source` and `target` params, if any.
    training_data: tuple[str, str] | None = None
    # Whether the MLmodel file was read: without it, "no profile" only means "not known".
    files_read: bool = False
    # The model's outputs for its input example rows at training time (None: not stored with the model).
    reference_predictions: tuple[tuple[float, ...], ...] | None = None

    @property
    def has_profile(self) -> bool | None:
        """Return whether the model carries a plinth reference profile (None: its files could not be read)."""
        return self.profile is not None if self.files_read else None

    def describe(self) -> str:
        """Return the version and its task for a message."""
        return f"v{self.version} ({self.task or 'task unknown'})"


def _download(client: MlflowClient, tracking_uri: str, name: str, version: str, path: str, into: Path) -> Path:
    """Fetch one file of a version's model directory through the given tracking URI (never the process default)."""
    import mlflow

    root = client.get_model_version_download_uri(name, version).rstrip("/")
    fetched = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{root}/{path}", dst_path=str(into), tracking_uri=tracking_uri
    )
    return Path(fetched)


def read_files(client: MlflowClient, tracking_uri: str, name: str, version: str) -> ModelFacts:
    """Return what the version's MLmodel file (and input example) say about task, profile and inputs."""
    from mlflow.models import Model

    with tempfile.TemporaryDirectory(prefix="plinth-inspect-") as tmp:
        model = Model.load(str(_download(client, tracking_uri, name, version, "MLmodel", Path(tmp))))
        example = None
        example_info = model.saved_input_example_info or {}
        if example_info.get("artifact_path"):
            _download(client, tracking_uri, name, version, example_info["artifact_path"], Path(tmp))
            loaded = model.load_input_example(tmp)
            example = loaded if isinstance(loaded, pd.DataFrame) else None
    block = (model.metadata or {}).get(METADATA_KEY) or {}
    profile = ReferenceProfile.from_dict(block["reference_profile"]) if "reference_profile" in block else None
    task = Task.from_dict(block["task"]).kind if "task" in block else None
    inputs: tuple[InputColumn, ...] = ()
    if model.signature is not None and model.signature.inputs is not None:
        inputs = tuple(
            InputColumn(str(spec.name), getattr(spec.type, "name", str(spec.type)), bool(spec.required))
            for spec in model.signature.inputs.inputs
        )
    stored = block.get("reference_predictions")
    expected = tuple(tuple(float(v) for v in (row if isinstance(row, list) else [row])) for row in stored or ())
    return ModelFacts(
        name, version, task, profile, inputs, example, files_read=True, reference_predictions=expected or None
    )


def training_data(client: MlflowClient, run_id: str | None) -> tuple[str, str] | None:
    """Return the (source, target) params of the run that trained a version, or of its pipeline's parent run.

    plinth's ingest step records them on the pipeline run; the model is logged in a nested candidate run.
    """
    for _ in range(2):
        if not run_id:
            return None
        run = client.get_run(run_id)
        params = run.data.params
        if params.get("source") and params.get("target"):
            return params["source"], params["target"]
        run_id = run.data.tags.get(PARENT_RUN_TAG)
    return None


def inspect_version(client: MlflowClient, tracking_uri: str, name: str, version: str) -> ModelFacts:
    """Return what the registry says about one version: the `plinth.task` tag first, then its files.

    Never raises for a version whose files or run cannot be read: those facts stay unknown and the
    rollout goes on with what does not need them (a missing version fails earlier, when its alias is
    resolved).
    """
    found = client.get_model_version(name, version)
    try:
        facts = read_files(client, tracking_uri, name, version)
    except Exception as error:  # any registry, download or parse failure: the facts stay unknown
        LOG.warning("cannot read the files of %s v%s: %s", name, version, first_line(error))
        facts = ModelFacts(name, version)
    try:
        facts = replace(facts, training_data=training_data(client, found.run_id))
    except Exception as error:  # a deleted run, a registry without runs: only the default traffic is lost
        LOG.warning("cannot read the training run of %s v%s: %s", name, version, first_line(error))
    tag = found.tags.get(TAG_TASK)
    return replace(facts, task=tag) if tag else facts


def task_mismatch(stable: ModelFacts, canary: ModelFacts) -> str | None:
    """Return why the canary cannot replace the stable (it solves another task), None when it may."""
    if stable.task and canary.task and stable.task != canary.task:
        return (
            f"canary {canary.name} {canary.describe()} solves another task than the stable {stable.describe()}: "
            "its predictions cannot be compared or served in its place"
        )
    return None


def files_digest(client: MlflowClient, tracking_uri: str, name: str, version: str) -> str:
    """Return the manifest digest of a version's model files as trained: its signature and statement left out.

    What identifies "the same files" across versions: the same files registered again as another version have
    the same digest, signed or not (a signature's statement names its own version, so the signed digest and the
    `plinth.signature.digest` tag differ from version to version).

    Raises:
        MlflowException, OSError: the version or its files cannot be fetched.
    """
    import mlflow

    with tempfile.TemporaryDirectory(prefix="plinth-digest-") as tmp:
        source = client.get_model_version_download_uri(name, version)
        fetched = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp, tracking_uri=tracking_uri)
        files = Path(fetched)
        if not files.is_relative_to(tmp):  # never edit the stored files themselves
            files = Path(shutil.copytree(files, Path(tmp) / "copy"))
        (files / signing.STATEMENT_FILE).unlink(missing_ok=True)
        return signing.manifest_digest(files)


def loader_refusal(
    client: MlflowClient, tracking_uri: str, name: str, version: str, policy: LoaderPolicy | None = None
) -> signing.Verdict | None:
    """Return why the loader the version's MLmodel names must not run (`loaders.py`), None when it may.

    Only the MLmodel file is fetched and read as YAML: nothing of the model is imported here. `policy` defaults
    to the process's PLINTH_ALLOWED_LOADERS / PLINTH_ALLOWED_FOREIGN_MODELS; one that cannot be read refuses.

    Raises:
        MlflowException, OSError: the MLmodel file cannot be fetched (nothing is known then).
    """
    try:
        policy = LoaderPolicy.from_env() if policy is None else policy
    except ValueError as error:
        return signing.Verdict(LOADER_REFUSED, f"{name} v{version} refused: {error}")
    if name in policy.models:
        return None
    with tempfile.TemporaryDirectory(prefix="plinth-loader-") as tmp:
        _download(client, tracking_uri, name, version, MLMODEL_FILE, Path(tmp))
        return policy.check(Path(tmp), name, version)


def verify_version(
    client: MlflowClient,
    tracking_uri: str,
    name: str,
    version: str,
    public_key: Path | None,
    required: bool,
    policy: LoaderPolicy | None = None,
) -> signing.Verdict:
    """Fetch all of a version's files and check its loader and its signature, as the model service will.

    Raises:
        MlflowException, OSError: the version or its files cannot be fetched (nothing is known then).
    """
    import mlflow

    found = client.get_model_version(name, version)
    refused = loader_refusal(client, tracking_uri, name, version, policy)
    if refused is not None:
        return refused
    tags = {str(key): str(value) for key, value in (found.tags or {}).items()}
    if public_key is None:  # decided by the tags and the key alone; a signature file without its tag still counts
        return signing.check(Path(), tags, public_key, required, name, version)
    with tempfile.TemporaryDirectory(prefix="plinth-verify-") as tmp:
        files = mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(name, version), dst_path=tmp, tracking_uri=tracking_uri
        )
        return signing.check(Path(files), tags, public_key, required, name, version)
