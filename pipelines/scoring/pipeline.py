"""The scoring pipeline: read a table, score it with a registered version, write predictions (one step).

One step, because the table streams through it: each chunk is read, checked against the served contract,
scored, written and counted into the drift report before the next is read, so no step ever holds the table
and nothing is handed between pods. It runs on the CPU pool with the training pipeline's settings
(`pipelines/training/compute.py`): the data Secret (the source and the output), the MLflow login, no pickles;
and it verifies each version's signature with the public key of the ConfigMap VERIFY_KEY_CONFIGMAP, as the
model service does.
"""

from kfp import dsl, kubernetes
from kfp.dsl import PipelineTask
from kfp.dsl.graph_component import GraphComponent

from components.score.component import score
from components.score.core import EXPERIMENT
from pipelines.training.compute import (
    ComputeTarget,
    on_cpu_pool,
    with_data_credentials,
    with_mlflow_login,
    without_pickles,
)
from pipelines.training.pipeline import CLUSTER_TRACKING_URI, DEFAULT_MODEL_NAME

PIPELINE_NAME = "plinth-scoring"
# The public key that verifies the registry's signatures (not a secret): the chart's `signing.publicKey`.
VERIFY_KEY_CONFIGMAP = "plinth-signing-public-key"
VERIFY_KEY_MOUNT = "/etc/plinth/signing"
CLUSTER_VERIFY_KEY = f"{VERIFY_KEY_MOUNT}/public.pem"


def with_verify_key(task: PipelineTask) -> PipelineTask:
    """Mount the ConfigMap holding the signing public key (`public.pem`) where `verify_key` points by default."""
    kubernetes.use_config_map_as_volume(
        task, config_map_name=VERIFY_KEY_CONFIGMAP, mount_path=VERIFY_KEY_MOUNT, optional=True
    )
    return task


def build_scoring_pipeline(target: ComputeTarget) -> GraphComponent:
    """Return the scoring pipeline scheduled for `target` (it always runs on the CPU pool)."""

    @dsl.pipeline(name=PIPELINE_NAME, description="plinth batch scoring: a table -> predictions + rejects")
    def scoring(
        source: str,
        out: str,
        tracking_uri: str = CLUSTER_TRACKING_URI,
        model_name: str = DEFAULT_MODEL_NAME,
        version: str = "",
        alias: str = "champion",
        experiment: str = EXPERIMENT,
        chunk_rows: int = 100_000,
        keep: str = "",
        max_psi: float = 0.25,
        require_signature: bool = True,
        verify_key: str = CLUSTER_VERIFY_KEY,
        explain: bool = False,
        git_commit: str = "unknown",
        trigger: str = "",
    ) -> None:
        step = score(
            source=source,
            model_name=model_name,
            version=version,
            alias=alias,
            out=out,
            tracking_uri=tracking_uri,
            experiment=experiment,
            job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            chunk_rows=chunk_rows,
            keep=keep,
            max_psi=max_psi,
            require_signature=require_signature,
            verify_key=verify_key,
            explain=explain,
            trigger=trigger,
            git_commit=git_commit,
        )
        step.set_display_name("score").set_caching_options(False)
        on_cpu_pool(step, target)
        with_data_credentials(step, target)
        with_mlflow_login(step, target)
        without_pickles(step)
        with_verify_key(step)

    return scoring
