"""The compiled scoring pipeline, run by kfp.local as `make score` runs it, on a partitioned Parquet table.

One signed churn model (mixed types, missing values) in a fresh PLINTH_HOME; a table of its rows with an id
column, hive-partitioned, where some rows break the served contract. Every row must come out as an answer or
as a rejection with its reasons, and the answers must be the model's own, in /predict's shape.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from components.common import modeling, signing, tracking
from components.common.state import local_tracking_uri
from components.ingest.core import dataset_hash
from components.score.core import EXPERIMENT, KIND
from serving.bench.demo_model import RegisteredModel, register_plinth_model
from serving.embedded.train_drill import DrillData
from serving.model_service.predictor import ServedTask
from serving.model_service.schema import answers

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CHURN = DrillData("synthetic:churn", "churned")
MODEL = "plinth-scoring-churn"
# Rows that break the contract, and the reason each must be given.
BROKEN = {
    7: ("age", np.inf, "age: inf is not a finite number"),
    8: ("support_calls", 2.5, "support_calls: 2.5 is not an integer"),
    9: ("income", 1e15, "income: 1e+15 is outside"),
}


def score(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PLINTH_HOME": str(home)}
    command = [sys.executable, "-m", "pipelines.scoring.run_local", "--model-name", MODEL, *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plinth-home")


@pytest.fixture(scope="module")
def model(home: Path) -> RegisteredModel:
    return register_plinth_model(local_tracking_uri(home), MODEL, CHURN, "scoring-tests")


@pytest.fixture(scope="module")
def table(model: RegisteredModel, home: Path) -> tuple[Path, pd.DataFrame]:
    """The model's features with a customer id, some rows broken, written as Parquet partitioned by `part`."""
    frame = model.features.assign(
        customer=np.arange(len(model.features)) + 1000, part=np.arange(len(model.features)) % 3
    )
    frame["support_calls"] = frame["support_calls"].astype(float)
    for row, (column, value, _) in BROKEN.items():
        frame.loc[row, column] = value
    folder = home / "to-score"
    frame.to_parquet(folder, partition_cols=["part"], index=False)
    read_back = ds.dataset(folder, partitioning="hive").to_table().to_pandas()  # the order the step reads
    return folder, read_back


@pytest.fixture(scope="module")
def scored(home: Path, table: tuple[Path, pd.DataFrame]) -> tuple[subprocess.CompletedProcess, Path]:
    out = home / "scored"
    done = score(home, "--source", str(table[0]), "--out", str(out), "--keep", "customer", "--chunk-rows", "500")
    return done, out


def test_every_row_is_answered_or_rejected_with_its_reasons(scored, table):
    done, out = scored
    assert done.returncode == 0, done.stderr[-3000:]
    source = table[1]
    predictions = ds.dataset(out / "predictions", partitioning="hive").to_table().to_pandas()
    rejects = ds.dataset(out / "rejects", partitioning="hive").to_table().to_pandas()
    assert len(predictions) + len(rejects) == len(source)
    assert sorted([*predictions["source_row"], *rejects["source_row"]]) == list(range(len(source)))
    by_customer = rejects.set_index("customer")["reject_reason"]
    assert len(rejects) == len(BROKEN)
    for row, (_, _, reason) in BROKEN.items():
        assert by_customer[1000 + row].startswith(reason)
    assert f"rows          : {len(source)} in = {len(predictions)} scored + {len(BROKEN)} rejected" in done.stdout


def test_answers_are_the_models_own_in_the_shape_of_predict(scored, table, model: RegisteredModel):
    _, out = scored
    source = table[1]
    predictions = ds.dataset(out / "predictions", partitioning="hive").to_table().to_pandas()
    rows = source.iloc[predictions["source_row"]]
    original = model.features.iloc[rows["customer"] - 1000]
    expected = answers(
        ServedTask.of(model.task), modeling.predict_output(model.model, model.task, original), MODEL, model.version
    )
    assert predictions["label"].tolist() == [answer["label"] for answer in expected]
    assert np.allclose(predictions["probability"], [answer["probability"] for answer in expected])
    assert predictions["probabilities"].iloc[0].keys() == expected[0]["probabilities"].keys()
    assert (predictions["model_version"].astype(str) == model.version).all()
    assert predictions["request_id"].str.startswith(f"{model.version}.").all()
    assert predictions["request_id"].is_unique
    assert predictions["customer"].tolist() == rows["customer"].tolist()


def test_the_run_records_version_verdict_data_hash_counts_and_drift(scored, table, home: Path, model):
    client = tracking.connect(local_tracking_uri(home))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    (run,) = client.search_runs([experiment.experiment_id], f"tags.`{tracking.TAG_KIND}` = '{KIND}'")
    tags, metrics = run.data.tags, run.data.metrics
    assert run.info.status == "FINISHED"
    assert (tags["plinth.model_name"], tags["plinth.model_version"]) == (MODEL, model.version)
    assert tags["plinth.verification"] == signing.VERIFIED
    assert tags["plinth.data_hash"] == dataset_hash(table[1])  # ingest's hash of the same table
    assert metrics["rows_in"] == metrics["rows_scored"] + metrics["rows_rejected"] == len(table[1])
    assert metrics["rows_rejected"] == len(BROKEN)
    assert metrics["drift_max_psi"] < 0.25  # the model's own training rows
    assert "drift_psi.age" in metrics
    report = client.download_artifacts(run.info.run_id, "drift/report.md")
    assert "| age |" in Path(report).read_text()
