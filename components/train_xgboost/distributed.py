"""The XGBoost candidate trained on a Dask cluster (`xgboost.dask`), for a table larger than one pod.

The Dask workers read the training split's Parquet as partitions (`dask.dataframe`); this process holds
only a sample. The shared preprocessing is fitted on rows that hold every distinct category (the ordinal
codes depend on nothing else: XGBoost's preprocessing neither scales nor imputes), then applied partition by
partition on the workers, which train one booster together with `DaskXGBClassifier`/`DaskXGBRegressor`
built from the single-node estimator's own parameters (native categories, time budget included). The booster
is then loaded into the single-node `XGBClassifier`/`XGBRegressor`, so the model that is saved, logged,
evaluated and served is the same kind of object, in the same format, as the one `core.build_model` fits in
one process.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder
from xgboost import XGBModel
from xgboost.dask import DaskXGBClassifier, DaskXGBRegressor

from components.common.candidate import Fit
from components.common.features import distinct_rows, prepare_features
from components.common.profile import ReferenceProfile
from components.train_xgboost.core import LabelEncodedClassifier

# Seconds to wait for the scheduler before the step fails with its address in the message.
CONNECT_TIMEOUT_S = 60
# Object stores the workers read a KFP artifact from; KFP names its MinIO `minio://`, an S3 API.
WORKER_SCHEMES = {"s3": "s3", "minio": "s3", "gs": "gs", "gcs": "gs", "abfs": "abfs", "az": "az"}


def worker_location(uri: str, path: str) -> str:
    """Return where the Dask workers read an artifact: its object-store URL, or the local path (kfp.local)."""
    parts = urlsplit(uri)
    scheme = WORKER_SCHEMES.get(parts.scheme)
    return f"{scheme}://{parts.netloc}{parts.path}" if scheme else path


def _categories_sample(features: dd.DataFrame) -> pd.DataFrame:
    """Return a small frame holding every distinct value of every non-numeric column (and the first rows).

    Each worker keeps its partitions' distinct rows, and this process those of their union: one pass over
    the table, no shuffle.
    """
    return distinct_rows(features.map_partitions(distinct_rows, meta=features._meta).compute())


def fit_on_dask(
    model: BaseEstimator, table: dd.DataFrame, profile: ReferenceProfile, client: Client
) -> tuple[Any, pd.DataFrame, int]:
    """Fit `core.build_model`'s estimator on the partitions of `table`; return it fitted and a sample of rows.

    Returns (the fitted model, a feature sample with every distinct category, the number of rows fitted).
    """
    table = client.persist(table)  # features and labels share these partitions, as xgboost.dask needs
    features = table.map_partitions(prepare_features, profile)
    labels = table[profile.target]
    sample = _categories_sample(features)
    preprocessor, learner = (model.steps[0][1], model.steps[-1][1]) if isinstance(model, Pipeline) else (None, model)
    if preprocessor is not None:
        preprocessor.fit(sample)  # ordinal codes only: a function of the distinct categories
        width = len(preprocessor.get_feature_names_out())
        encoded = features.map_partitions(preprocessor.transform, meta=np.empty((0, width), dtype=np.float64))
    else:
        encoded = features.to_dask_array()
    estimator = learner.estimator if isinstance(learner, LabelEncodedClassifier) else learner
    params = estimator.get_params()
    weights: Any = None
    if isinstance(learner, LabelEncodedClassifier):
        encoder = LabelEncoder().fit(labels.map_partitions(pd.Series.drop_duplicates).compute().to_numpy())
        target = labels.map_partitions(encoder.transform, meta=np.empty((0,), dtype=np.int64))
        if learner.class_weight is not None:  # the weights of the whole table's class counts, row by row
            counts = labels.value_counts().compute()
            share = {label: len(table.index) / (len(counts) * count) for label, count in counts.items()}
            weights = labels.map(share, meta=(profile.target, "f8")).to_dask_array()
        distributed: XGBModel = DaskXGBClassifier(**params)
    else:
        target = labels.to_dask_array()
        distributed = DaskXGBRegressor(**params)
    distributed.client = client
    distributed.fit(encoded, target, sample_weight=weights)
    single = type(estimator)(**params)
    single.load_model(bytearray(distributed.get_booster().save_raw("json")))
    if isinstance(learner, LabelEncodedClassifier):
        learner.encoder_, learner.classes_, learner.estimator_ = encoder, encoder.classes_, single
    elif isinstance(model, Pipeline):
        model.steps[-1] = (model.steps[-1][0], single)
    else:
        model = single
    return model, sample, len(table.index)


def dask_fit(scheduler: str) -> Fit:
    """Return train_candidate's `fit` that trains on the Dask cluster at `scheduler` (e.g. tcp://host:8786)."""

    def fit(model: Any, location: str, profile: ReferenceProfile) -> tuple[Any, pd.DataFrame, int]:
        with Client(scheduler, timeout=CONNECT_TIMEOUT_S) as client:
            workers = len(client.scheduler_info(n_workers=-1)["workers"])
            table = dd.read_parquet(location, split_row_groups="adaptive")
            if table.npartitions < workers:  # a small file: a partition per row group, spread over the workers
                table = dd.read_parquet(location, split_row_groups=True)
            fitted, sample, rows = fit_on_dask(model, table, profile, client)
        print(f"train xgboost: trained on {workers} Dask workers at {scheduler}, {table.npartitions} partitions")
        return fitted, sample, rows

    return fit
