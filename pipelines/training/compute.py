"""Where the pipeline's steps run on a cluster and what they get from it (node pools, accelerators, credentials).

Node pools, tolerations, resources, accelerators, the data Secret and the signer's address are kept apart from the
pipeline's data flow, so the CPU and GPU variants differ in exactly these settings. No step gets the signing key:
the register step gets the signer service's URL (PLINTH_SIGNER_URL), and the key lives in the signer's own
namespace (manifests/platform/signer). kfp.local ignores the Kubernetes settings; the environment variables
(`without_pickles`, `with_signer`) apply there too, and a local SQLite store is signed in-process with the
machine's own key whatever PLINTH_SIGNER_URL says (components/register).
"""

from __future__ import annotations

from dataclasses import dataclass

from kfp import kubernetes
from kfp.dsl import PipelineTask

from components.common.modeling import ENV_ALLOW_PICKLE
from components.register.core import ENV_SIGNER_URL

# The standard variables of the object stores ingest reads (components/ingest/read.py), taken from the data
# Secret's keys of the same names. GOOGLE_APPLICATION_CREDENTIALS names a file: put the key JSON in the Secret
# too (say as `gcs.json`) and set it to DATA_SECRET_MOUNT + "/gcs.json".
DATA_CREDENTIAL_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
)
DATA_SECRET_MOUNT = "/var/run/secrets/plinth-data"
# The steps' MLflow login (MLflow reads these variables), from the keys of the MLflow Secret: never in the
# tracking URI, which is a run parameter that KFP stores and shows.
MLFLOW_LOGIN_KEYS = {"username": "MLFLOW_TRACKING_USERNAME", "password": "MLFLOW_TRACKING_PASSWORD"}


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
    # The signer service the register step asks to sign a new version (serving/signer; it alone holds the key).
    signer_url: str = "http://plinth-signer.plinth-signing.svc:8080"
    # Secret with the object-store credentials ingest reads the source with ("" for none): each key named in
    # DATA_CREDENTIAL_KEYS becomes that environment variable; the Secret and every key are optional.
    data_secret: str = "plinth-data"
    # Optional Secret (keys `username`, `password`) with the training steps' MLflow login ("" for none).
    mlflow_secret: str = "plinth-mlflow-training"
    # The distributed option for XGBoost: a Dask scheduler's address (a DaskCluster of the dask-kubernetes
    # operator, e.g. tcp://plinth-dask-scheduler.plinth.svc:8786), the default of the `dask_scheduler`
    # parameter; "" (off) trains in the step's pod. On, the XGBoost step is a client and runs on the CPU pool.
    dask_scheduler: str = ""

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


# The pod label of a Dask client step: manifests/platform/dask's NetworkPolicy lets only such pods reach the scheduler.
DASK_CLIENT_LABEL = "plinth.dev/dask-client"


def on_xgboost_pool(task: PipelineTask, target: ComputeTarget) -> PipelineTask:
    """Place the XGBoost step: on the accelerator pool, or the CPU pool when a Dask cluster does the training."""
    if not target.dask_scheduler:
        return on_accelerator_pool(task, target)
    kubernetes.add_pod_label(task, label_key=DASK_CLIENT_LABEL, label_value="true")
    return on_cpu_pool(task, target)


def without_pickles(task: PipelineTask) -> PipelineTask:
    """Let a step that loads models (evaluate, gate, register) load plinth's own (skops), never a pickle.

    MLflow's MLFLOW_ALLOW_PICKLE_DESERIALIZATION is true unless set; plinth's models never need it
    (`components/common/modeling.py`), and a champion that is a pickle is then refused with that name.
    """
    task.set_env_variable(ENV_ALLOW_PICKLE, "false")
    return task


def with_signer(task: PipelineTask, target: ComputeTarget) -> PipelineTask:
    """Tell the register step where the signer is (PLINTH_SIGNER_URL); it gets no key, nor any Secret of it."""
    task.set_env_variable(ENV_SIGNER_URL, target.signer_url)
    return task


def with_mlflow_login(task: PipelineTask, target: ComputeTarget) -> PipelineTask:
    """Give a step the MLflow login of the optional MLflow Secret as MLFLOW_TRACKING_USERNAME/PASSWORD.

    Optional: an MLflow without authentication needs no Secret. The login never travels in `tracking_uri`.
    """
    if target.mlflow_secret:
        kubernetes.use_secret_as_env(
            task, secret_name=target.mlflow_secret, secret_key_to_env=MLFLOW_LOGIN_KEYS, optional=True
        )
    return task


def with_data_credentials(task: PipelineTask, target: ComputeTarget) -> PipelineTask:
    """Give the ingest step the object-store credentials of the data Secret, as the standard variables.

    Optional throughout: without the Secret (or a key) the step runs without that variable, which is what a
    packaged dataset, a public bucket or a node's workload identity needs. The Secret is also mounted at
    DATA_SECRET_MOUNT, for the credential files (a GCS service-account key) the variables point at.
    """
    if not target.data_secret:
        return task
    keys = {key: key for key in DATA_CREDENTIAL_KEYS}
    kubernetes.use_secret_as_env(task, secret_name=target.data_secret, secret_key_to_env=keys, optional=True)
    kubernetes.use_secret_as_volume(task, secret_name=target.data_secret, mount_path=DATA_SECRET_MOUNT, optional=True)
    return task
