"""Where the pipeline's steps run on a cluster and what they get from it (node pools, keys, accelerators).

Node pools, tolerations, resources, accelerators and the signing key's Secret are kept apart from the
pipeline's data flow, so the CPU and GPU variants differ in exactly these settings.
kfp.local ignores all of it (it runs no Kubernetes), so a local run signs with its own key; only the
environment variables (`without_pickles`) apply there too.
"""

from __future__ import annotations

from dataclasses import dataclass

from kfp import kubernetes
from kfp.dsl import PipelineTask

from components.common.modeling import ENV_ALLOW_PICKLE


@dataclass(frozen=True)
class ComputeTarget:
    """The node pools a compiled pipeline schedules onto."""

    gpu: bool
    node_pool_label: str = "plinth.dev/node-pool"
    cpu_pool: str = "cpu"
    gpu_pool: str = "gpu"
    accelerator: str = "nvidia.com/gpu"
    gpu_taint_key: str = "nvidia.com/gpu"
    gpu_count: int = 1
    cpu_request: str = "500m"
    cpu_limit: str = "2"
    memory_request: str = "1G"
    memory_limit: str = "4G"
    # Secret (key `private.pem`) with the private key the register step signs model versions with.
    signing_secret: str = "plinth-signing-key"

    @property
    def name(self) -> str:
        """Return the variant's name, used in the compiled file name."""
        return "gpu" if self.gpu else "cpu"


def on_cpu_pool(task: PipelineTask, target: ComputeTarget) -> PipelineTask:
    """Give a step CPU/memory requests and limits and pin it to the CPU node pool."""
    task.set_cpu_request(target.cpu_request).set_cpu_limit(target.cpu_limit)
    task.set_memory_request(target.memory_request).set_memory_limit(target.memory_limit)
    kubernetes.add_node_selector(task, label_key=target.node_pool_label, label_value=target.cpu_pool)
    return task


def on_accelerator_pool(task: PipelineTask, target: ComputeTarget) -> PipelineTask:
    """Run a GPU-capable step on the GPU pool when the target has one, else on the CPU pool."""
    if not target.gpu:
        return on_cpu_pool(task, target)
    task.set_cpu_request(target.cpu_request).set_cpu_limit(target.cpu_limit)
    task.set_memory_request(target.memory_request).set_memory_limit(target.memory_limit)
    task.set_accelerator_type(target.accelerator).set_accelerator_limit(target.gpu_count)
    kubernetes.add_node_selector(task, label_key=target.node_pool_label, label_value=target.gpu_pool)
    kubernetes.add_toleration(task, key=target.gpu_taint_key, operator="Exists", effect="NoSchedule")
    return task


def without_pickles(task: PipelineTask) -> PipelineTask:
    """Let a step that loads models (evaluate, gate) load plinth's own (skops), never a pickle, here and locally.

    MLflow's MLFLOW_ALLOW_PICKLE_DESERIALIZATION is true unless set; plinth's models never need it
    (`components/common/modeling.py`), and a champion that is a pickle is then refused with that name.
    """
    task.set_env_variable(ENV_ALLOW_PICKLE, "false")
    return task


def with_signing_key(task: PipelineTask, target: ComputeTarget) -> PipelineTask:
    """Give the register step the private key from its Secret, as PLINTH_SIGNING_KEY_PEM (never in an image)."""
    kubernetes.use_secret_as_env(
        task, secret_name=target.signing_secret, secret_key_to_env={"private.pem": "PLINTH_SIGNING_KEY_PEM"}
    )
    return task
