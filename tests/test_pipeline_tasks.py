"""Every task through the real compiled pipeline (kfp.local + MLflow on SQLite), as `make train` runs it.

Multiclass (wine), regression (diabetes, a champion on 30 % of the rows and then a full-data challenger
gated on RMSE), and an ambiguous target. A user's CSV with text, booleans and missing values runs as the
README types it (tests/docs/test_own_data.py).
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from components.common import tracking
from components.common.state import local_tracking_uri
from components.ingest.synthetic import churn_table
from tests.test_pipeline_local import pipeline_runs, train

pytestmark = pytest.mark.integration


def client_for(home: Path) -> MlflowClient:
    return tracking.connect(local_tracking_uri(home))


def candidates(client: MlflowClient, parent_id: str, experiment_id: str) -> list:
    return client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")


def test_multiclass_trains_evaluates_and_registers_with_its_classes(tmp_path):
    result = train(tmp_path, "--source", "sklearn:wine", "--model-name", "wine")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "task          : multiclass" in result.stdout
    client = client_for(tmp_path)
    version = client.get_model_version_by_alias("wine", "champion")
    assert version.tags["plinth.task"] == "multiclass"
    parent = pipeline_runs(client)[0]
    for child in candidates(client, parent.info.run_id, parent.info.experiment_id):
        assert {"test_roc_auc", "test_log_loss", "test_accuracy", "test_f1_macro"} <= set(child.data.metrics)
        assert "test_f1" not in child.data.metrics
        plots = {artifact.path for artifact in client.list_artifacts(child.info.run_id, "plots")}
        assert plots == {"plots/roc_curve.png", "plots/confusion_matrix.png"}
    info = mlflow.models.get_model_info(f"models:/wine/{version.version}")
    assert info.metadata["plinth"]["task"] == {"kind": "multiclass", "classes": [0, 1, 2]}
    assert list(info.signature.outputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 3]


def test_regression_champion_then_a_better_challenger_gated_on_rmse(tmp_path):
    first = train(tmp_path, "--source", "sklearn:diabetes", "--model-name", "diabetes", "--train-fraction", "0.3")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "task          : regression" in first.stdout
    second = train(tmp_path, "--source", "sklearn:diabetes", "--model-name", "diabetes", "--primary-metric", "rmse")
    assert second.returncode == 0, second.stderr[-3000:]
    client = client_for(tmp_path)
    parents = pipeline_runs(client)
    # The first champion beat the naive baseline, the mean, scored on the same test rows (components/gate).
    assert "beats the naive baseline, the mean of the target" in parents[0].data.tags[tracking.TAG_REASON]
    assert parents[0].data.metrics["baseline_r2"] < 0.05 < parents[0].data.metrics["winner_r2"]
    decision = parents[1].data.tags
    assert decision["plinth.gate.primary_metric"] == "rmse"
    assert decision[tracking.TAG_DECISION] == "passed", decision[tracking.TAG_REASON]
    assert "proposed as challenger" in decision[tracking.TAG_REASON]
    assert parents[1].data.metrics["winner_rmse"] < parents[0].data.metrics["winner_rmse"]
    assert client.get_model_version_by_alias("diabetes", "challenger").tags["plinth.task"] == "regression"
    for child in candidates(client, parents[1].info.run_id, parents[1].info.experiment_id):
        assert {"test_rmse", "test_mae", "test_r2"} <= set(child.data.metrics)
        assert [a.path for a in client.list_artifacts(child.info.run_id, "plots")] == ["plots/residuals.png"]


def test_an_ambiguous_target_stops_at_validate_saying_how_to_choose(tmp_path):
    source = tmp_path / "scores.csv"
    churn_table().assign(churned=lambda f: (f.churned == "yes").astype(float)).to_csv(source, index=False)
    result = train(tmp_path / "home", "--source", str(source), "--target", "churned")
    assert result.returncode == 1
    assert (
        "column 'churned', rule task: target 'churned' is a float column with only 2 distinct values" in result.stderr
    )
    assert "--task classification" in result.stderr
    assert not client_for(tmp_path / "home").search_registered_models()
