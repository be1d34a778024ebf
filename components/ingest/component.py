"""KFP shell of the ingest step."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def ingest(
    source: str,
    target: str,
    tracking_uri: str,
    experiment: str,
    job_name: str,
    dataset: Output[Dataset],
    trigger: str = "",
) -> NamedTuple("IngestOutputs", [("run_id", str), ("data_hash", str)]):  # type: ignore[valid-type]
    """Read the source into a Parquet dataset and open the pipeline's parent MLflow run.

    Args:
        source: `sklearn:breast_cancer` (a dataset shipped in a package), or a .csv/.parquet file or a folder
            of (hive-partitioned) Parquet files, as a path or an `s3://`, `gs://` or `abfs://` URL; credentials
            come from the environment (the Secret `pipelines.compile --data-secret` names).
        target: Name of the label column.
        tracking_uri: MLflow tracking URI.
        experiment: MLflow experiment name.
        job_name: Pipeline job name, used as the parent run's name.
        dataset: The ingested data.
        trigger: What started the run, as pipelines/triggers writes it (JSON; "" when a person did), tagged
            on the parent run as `plinth.trigger.*` before any later step can stop the pipeline.

    Returns:
        run_id: The parent MLflow run id; data_hash: sha256 of the data.
    """
    from collections import namedtuple

    from components.ingest.core import run

    run_id, data_hash = run(source, target, dataset.path, tracking_uri, experiment, job_name, trigger)
    IngestOutputs = namedtuple("IngestOutputs", ["run_id", "data_hash"])
    return IngestOutputs(run_id, data_hash)
