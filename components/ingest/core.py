"""Ingest: turn a source (a packaged dataset, a file, a folder or an object-store URL) into one DataFrame."""

from __future__ import annotations

import hashlib
import re

import pandas as pd

from components.common.redact import redact
from components.ingest import production
from components.ingest.read import IngestError as IngestError
from components.ingest.read import read_table

BUILTIN_PREFIX = "sklearn:"
SYNTHETIC_PREFIX = "synthetic:"
BUILTIN_TARGET = "target"


def snake_case(name: str) -> str:
    """Return a column name that is a clean JSON key and Python identifier ("mean radius" -> "mean_radius")."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def load_builtin(name: str) -> pd.DataFrame:
    """Load a dataset that ships inside scikit-learn; the label column is called `target`.

    breast_cancer is binary, wine has three classes, diabetes is a regression (disease progression).
    """
    from sklearn import datasets

    loaders = {
        "breast_cancer": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
        "diabetes": datasets.load_diabetes,
    }
    loader = loaders.get(name)
    if loader is None:
        known = ", ".join(BUILTIN_PREFIX + key for key in loaders)
        raise IngestError(f"unknown built-in dataset {BUILTIN_PREFIX}{name!r}; known: {known}")
    frame = loader(as_frame=True).frame
    return frame.rename(columns={column: snake_case(column) for column in frame.columns})


def load_synthetic(name: str) -> pd.DataFrame:
    """Generate a packaged synthetic table (`synthetic:churn`: mixed types and missing values)."""
    from components.ingest.synthetic import churn_table

    if name != "churn":
        raise IngestError(f"unknown synthetic dataset {SYNTHETIC_PREFIX}{name!r}; known: {SYNTHETIC_PREFIX}churn")
    return churn_table()


def is_packaged(source: str) -> bool:
    """Return whether `source` names a dataset shipped in a package (no file, no lineage source)."""
    return source.startswith((BUILTIN_PREFIX, SYNTHETIC_PREFIX))


def load_source(source: str) -> pd.DataFrame:
    """Load `sklearn:<name>` or `synthetic:churn` from the package, else the table at a path or URL.

    A path or URL is a CSV or Parquet file, or a folder of Parquet files with `key=value/` partitions, on
    this machine or in an object store (`s3://`, `gs://`, `abfs://`; `components/ingest/read.py`).
    `production:<archive>?model=<name>&since=<YYYY-MM-DD>` is the labelled production window of a payload
    archive (`components/ingest/production.py`).

    Raises:
        IngestError: one line naming the source (credentials masked) and why it cannot be read.
    """
    if source.startswith(BUILTIN_PREFIX):
        return load_builtin(source.removeprefix(BUILTIN_PREFIX))
    if source.startswith(SYNTHETIC_PREFIX):
        return load_synthetic(source.removeprefix(SYNTHETIC_PREFIX))
    if production.is_production(source):
        return production.load_production(source)
    return read_table(source)


def dataset_hash(frame: pd.DataFrame) -> str:
    """Return a content hash of the data (values, column names and order) for lineage tags.

    It hashes what was read, not where it lay: the same table gives the same hash from a local file, an S3
    object or a GCS copy, and any changed value, column or row order gives a new one. Ingest reads every
    byte anyway, so hashing the content costs one pass over the frame in memory; object-store ETags would be
    cheaper but differ between stores (and between single and multipart uploads of the same bytes).
    """
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def run(
    source: str,
    target: str,
    dataset_path: str,
    tracking_uri: str,
    experiment: str,
    job_name: str,
    trigger: str = "",
) -> tuple[str, str]:
    """Step entry: open the pipeline's parent MLflow run, read the source, write it as Parquet.

    Returns (parent run id, data hash). The parent run is opened first so that a source that cannot be
    read still leaves a FAILED run saying why. It carries the trigger's `plinth.trigger.*` tags from the
    start (register writes the same ones), so a run the gate rejects, or one that fails, still says why it ran.

    Raises:
        IngestError: the source cannot be read.
        ValueError: `trigger` is not a JSON object (checked before any run is opened).
    """
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    from components.common import tracking
    from components.common.features import distinct_rows
    from components.register.core import trigger_tags

    tags = {tracking.TAG_KIND: "pipeline", **trigger_tags(trigger)}
    client = tracking.connect(tracking_uri)
    experiment_id = tracking.ensure_experiment(client, experiment, tracking_uri)
    parent = client.create_run(experiment_id, run_name=job_name, tags=tags)
    run_id = parent.info.run_id
    shown = production.describe(source) if production.is_production(source) else redact(source)
    client.log_param(run_id, "source", shown)
    client.log_param(run_id, "target", target)
    try:
        frame = load_source(source)
    except IngestError as error:
        tracking.mark_failed(client, run_id, "ingest", str(error))
        raise
    digest = dataset_hash(frame)
    frame.to_parquet(dataset_path, index=False)
    client.set_tag(run_id, "plinth.data_hash", digest)
    # MLflow resolves paths and URLs as dataset sources; a packaged dataset has no such source.
    origin = {} if is_packaged(source) else {"source": production.lineage(source)}
    context = InputTag(key=MLFLOW_DATASET_CONTEXT, value="training")
    lineage = from_pandas(frame, targets=target, name=source, **origin)
    with tracking.integer_columns_checked():
        # MLflow checks every value of a text column in Python to type it (about 4 minutes for a million rows
        # and three such columns); the rows that hold each distinct value give the same schema in milliseconds.
        lineage.__dict__["schema"] = from_pandas(distinct_rows(frame), targets=target).schema  # its cached_property
        dataset = lineage._to_mlflow_entity()
    client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[context])])
    print(f"ingest: {len(frame)} rows x {frame.shape[1]} columns from {shown} (sha256 {digest[:12]})")
    return run_id, digest
