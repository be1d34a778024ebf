"""The distributed option: XGBoost on a 2-worker Dask cluster, the MLP on 2 torchrun processes (gloo).

Both train through the step's own code path (train_candidate with the distributed `fit`), and what they
save is scored by the evaluate step's code like any single-process candidate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import pandas as pd
import pytest
import yaml
from distributed import Client, LocalCluster
from kfp import compiler
from sklearn.metrics import r2_score
from xgboost import XGBClassifier, collective
from xgboost.callback import TrainingCallback

from components.common import modeling, tracking
from components.common.candidate import TrainedCandidate, train_candidate
from components.common.features import split_target
from components.common.modeling import predict_output
from components.common.profile import ReferenceProfile, build_profile
from components.common.task import infer_task
from components.evaluate.core import run as evaluate
from components.ingest.core import load_source
from components.split.core import split
from components.train_torch.core import build_model as build_torch
from components.train_torch.distributed import torchrun_fit
from components.train_xgboost.core import build_model as build_xgboost
from components.train_xgboost.core import fitted_booster, for_cpu_inference
from components.train_xgboost.distributed import dask_fit, fit_on_dask, worker_location
from pipelines.training.compute import ComputeTarget
from pipelines.training.pipeline import build_pipeline
from tests.test_compiled_pipeline import executors_by_task


@dataclass(frozen=True)
class Files:
    """A dataset split as the pipeline leaves it: train and test Parquet, and the validated profile."""

    train: Path
    test: Path
    profile: Path

    def load_profile(self) -> ReferenceProfile:
        """Read the profile back."""
        return ReferenceProfile.from_dict(json.loads(self.profile.read_text()))


def write_split(directory: Path, source: str, target: str) -> Files:
    """Split `source` as the split step does; the train Parquet has row groups of 100 (several partitions)."""
    directory.mkdir()
    frame = load_source(source)
    profile = build_profile(frame, target, infer_task(frame[target]))
    train, test = split(frame, target, 0.25, seed=0, stratify=profile.task.is_classification)
    files = Files(directory / "train.parquet", directory / "test.parquet", directory / "profile.json")
    train.to_parquet(files.train, index=False, row_group_size=100)
    test.to_parquet(files.test, index=False)
    files.profile.write_text(json.dumps(profile.to_dict()))
    return files


@pytest.fixture(scope="module")
def dask_scheduler() -> Iterator[str]:
    """One 2-worker, 1-thread-each Dask cluster of separate processes for the module."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """The mixed-type table (numbers, four categorical features, missing values), binary target."""
    return write_split(tmp_path_factory.mktemp("data") / "churn", "synthetic:churn", "churned")


class RecordRank(TrainingCallback):
    """Write "rank/world size" to a file per rank before training: which Dask workers took part."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    def before_training(self, model: Any) -> Any:
        """Record this worker's rank in the collective that trains the booster."""
        rank, world = collective.get_rank(), collective.get_world_size()
        (self.directory / f"rank-{rank}").write_text(f"{rank}/{world}")
        return model


def parent_run(tmp_path: Path) -> tuple[str, str]:
    """Return (tracking URI, parent run id) of a fresh SQLite MLflow store, as ingest leaves it."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = tracking.connect(uri)
    return uri, client.create_run(tracking.ensure_experiment(client, "distributed", uri)).info.run_id


def test_xgboost_trains_on_two_dask_workers_and_is_scored_like_any_candidate(dask_scheduler, churn, tmp_path):
    uri, parent = parent_run(tmp_path)
    ranks = tmp_path / "ranks"
    ranks.mkdir()

    def build(profile: ReferenceProfile) -> Any:
        model = build_xgboost(profile, seed=0, device="cpu", n_estimators=50)
        learner = model.steps[-1][1].estimator
        learner.set_params(callbacks=[*learner.get_params()["callbacks"], RecordRank(ranks)])
        return model

    def train(fit_on_cluster: bool, name: str) -> TrainedCandidate:
        return train_candidate(
            "xgboost",
            build,
            str(churn.train),
            str(churn.profile),
            uri,
            parent,
            str(tmp_path / name),
            "cpu",
            prepare_for_saving=for_cpu_inference,
            extra_packages=["xgboost"],
            fit=dask_fit(dask_scheduler) if fit_on_cluster else None,
        )

    distributed = train(True, "distributed")
    assert sorted(path.read_text() for path in ranks.iterdir()) == ["0/2", "1/2"]

    # The saved model is the single-node kind of object, categories split natively, one input per feature.
    loaded = modeling.load_model(str(tmp_path / "distributed"))
    booster = fitted_booster(loaded)
    assert type(booster) is XGBClassifier
    assert booster.get_booster().num_boosted_rounds() == 50
    assert list(booster.get_booster().feature_types or ()).count("c") == 4
    assert booster.get_params()["callbacks"] is None

    # Same MLflow records as the single-node candidate; the evaluate step scores both the same way.
    single = train(False, "single")
    client = tracking.connect(uri)
    runs = {run.run_id: client.get_run(run.run_id).data for run in (distributed, single)}
    assert runs[distributed.run_id].params == runs[single.run_id].params
    assert runs[distributed.run_id].tags["plinth.candidate"] == "xgboost"
    assert "fit_seconds" in runs[distributed.run_id].metrics
    scores = {
        name: evaluate(str(tmp_path / name), str(churn.test), uri, trained.to_json())["candidate"]["metrics"]
        for name, trained in (("distributed", distributed), ("single", single))
    }
    assert scores["distributed"]["accuracy"] > 0.85
    assert abs(scores["distributed"]["roc_auc"] - scores["single"]["roc_auc"]) < 0.03


def test_the_time_budget_stops_every_dask_worker_in_the_same_round(dask_scheduler, churn):
    profile = churn.load_profile()
    model = build_xgboost(profile, seed=0, device="cpu", n_estimators=200, time_budget_s=0.0)
    with Client(dask_scheduler) as client:
        table = dd.read_parquet(churn.train, split_row_groups=True)
        assert table.npartitions >= 2
        fitted, sample, rows = fit_on_dask(model, table, profile, client)
    # Both workers voted to stop after round 1 (one stopping alone would hang the other's allreduce).
    booster = fitted_booster(fitted)
    assert booster is not None
    assert booster.get_booster().num_boosted_rounds() == 1
    assert rows == len(pd.read_parquet(churn.train))
    for name, stats in profile.features.items():  # the sample holds every category the table has
        if not stats.is_numeric:
            assert set(sample[name].dropna()) == set(pd.read_parquet(churn.train)[name].dropna())


def test_a_regressor_without_preprocessing_trains_on_dask(dask_scheduler, tmp_path):
    files = write_split(tmp_path / "diabetes", "sklearn:diabetes", "target")
    profile = files.load_profile()
    model = build_xgboost(profile, seed=0, device="cpu", n_estimators=50)
    fitted, _, _ = dask_fit(dask_scheduler)(model, str(files.train), profile)
    features, truth = split_target(pd.read_parquet(files.test), profile)
    assert r2_score(truth, predict_output(fitted, profile.task, features)) > 0.2


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("minio://mlpipeline/v2/artifacts/run/split/train", "s3://mlpipeline/v2/artifacts/run/split/train"),
        ("gs://bucket/train", "gs://bucket/train"),
        ("/tmp/local/train", "/tmp/local/train"),
    ],
)
def test_dask_workers_read_an_artifact_from_its_object_store(uri, expected):
    assert worker_location(uri, "/tmp/local/train") == expected


@pytest.fixture(scope="module")
def breast_cancer(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """The binary table with numeric features only."""
    return write_split(tmp_path_factory.mktemp("data") / "breast_cancer", "sklearn:breast_cancer", "target")


def test_the_mlp_trains_data_parallel_on_two_torchrun_processes(breast_cancer, tmp_path, capfd):
    uri, parent = parent_run(tmp_path)

    def train(processes: int, name: str) -> TrainedCandidate:
        return train_candidate(
            "torch",
            lambda profile: build_torch(profile, seed=0, device="cpu", epochs=10),
            str(breast_cancer.train),
            str(breast_cancer.profile),
            uri,
            parent,
            str(tmp_path / name),
            "cpu",
            extra_packages=["torch"],
            fit=torchrun_fit(processes, seed=0, max_passes=10, time_budget_s=600.0) if processes > 1 else None,
        )

    ddp = train(2, "ddp")
    out = capfd.readouterr().out
    # Both ranks stepped through half of each pass, and DDP kept their weights identical.
    shards = re.findall(r"rank (\d) of 2 stepped through (\d+) rows a pass", out)
    assert sorted(rank for rank, _ in shards) == ["0", "1"]
    fit_rows = len(pd.read_parquet(breast_cancer.train)) - int(len(pd.read_parquet(breast_cancer.train)) * 0.15)
    assert all(int(rows) == -(-fit_rows // 2) for _, rows in shards)
    digests = dict(re.findall(r"rank (\d) of 2 weights ([0-9a-f]+)", out))
    assert set(digests) == {"0", "1"}
    assert digests["0"] == digests["1"]

    single = train(1, "single")
    scores = {
        name: evaluate(str(tmp_path / name), str(breast_cancer.test), uri, trained.to_json())["candidate"]["metrics"]
        for name, trained in (("ddp", ddp), ("single", single))
    }
    assert scores["ddp"]["accuracy"] > 0.9
    assert abs(scores["ddp"]["roc_auc"] - scores["single"]["roc_auc"]) < 0.03
    saved = modeling.load_model(str(tmp_path / "ddp"))
    assert type(saved.steps[-1][1]) is type(modeling.load_model(str(tmp_path / "single")).steps[-1][1])


def test_the_distributed_option_compiles_into_the_pipeline(tmp_path):
    address = "tcp://plinth-dask-scheduler.plinth.svc:8786"
    path = tmp_path / "training-gpu.yaml"
    compiler.Compiler().compile(build_pipeline(ComputeTarget(gpu=True, dask_scheduler=address)), str(path))
    spec, platform = yaml.safe_load_all(path.read_text())
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["dask_scheduler"]["defaultValue"] == address
    assert parameters["torch_processes"]["defaultValue"] == 1
    tasks = spec["root"]["dag"]["tasks"]
    for task, name in (("train-xgboost", "dask_scheduler"), ("train-torch", "torch_processes")):
        given = tasks[task]["inputs"]["parameters"][name]
        assert given == {"componentInputParameter": name}
    # With a Dask cluster the XGBoost step is only its client: the CPU pool, no GPU; torch keeps the GPU.
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    containers = executors_by_task(spec)
    assert executors["exec-train-xgboost"]["nodeSelector"]["labels"] == {"plinth.dev/node-pool": "cpu"}
    assert "accelerator" not in containers["train-xgboost"]["resources"]
    assert executors["exec-train-torch"]["nodeSelector"]["labels"] == {"plinth.dev/node-pool": "gpu"}
    # Off by default: the committed variants train in the step's pod.
    default = build_pipeline(ComputeTarget(gpu=True)).pipeline_spec.root.input_definitions.parameters
    assert default["dask_scheduler"].default_value.string_value == ""
