"""The compiled pipeline, run for real by kfp.local against MLflow on SQLite, as `make train` runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from components.common import modeling, signing, tracking
from components.common.state import local_tracking_uri
from pipelines.training.pipeline import DEFAULT_MODEL_NAME, PIPELINE_NAME

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
# What pipelines/triggers passes when a drift alert starts the run (the first run of `twice`).
TRIGGER = json.dumps({"kind": "input_drift", "reason": "PSI of radius above 0.25", "values": {"psi.radius": 0.41}})


def train(home: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `make train`'s runner; without search (the fixed settings) unless `args` ask for trials."""
    env = {**os.environ, "PLINTH_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.run_local", "--search-trials", "0", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )


def pipeline_runs(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name(PIPELINE_NAME)
    return client.search_runs(
        [experiment.experiment_id],
        f"tags.`{tracking.TAG_KIND}` = 'pipeline'",
        order_by=["attributes.start_time ASC"],
    )


@pytest.fixture(scope="module")
def twice(tmp_path_factory) -> tuple[MlflowClient, subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """Train twice with the same settings: the second winner cannot beat the champion by the margin."""
    home = tmp_path_factory.mktemp("plinth-home")
    first = train(home, "--seed", "42", "--trigger", TRIGGER, "--search-trials", "2")
    second = train(home, "--seed", "42", "--search-trials", "2")
    return tracking.connect(local_tracking_uri(home)), first, second


def test_first_run_registers_a_champion_with_lineage(twice):
    client, first, _ = twice
    assert first.returncode == 0, first.stderr[-3000:]
    assert "registered    : plinth-classifier v1 with alias 'champion'" in first.stdout
    # The search's line says what the trials fitted on and that the winner was refitted on train + validation.
    assert (
        "search        : searched on 364 of 364 rows per trial; the winner refitted on training + validation (455"
        in first.stdout
    )
    version = client.get_model_version_by_alias(DEFAULT_MODEL_NAME, "champion")
    assert str(version.version) == "1"
    for tag in (
        "git_commit",
        "data_hash",
        "pipeline_name",
        "pipeline_version",
        "pipeline_run_id",
        "candidate",
    ):
        assert version.tags.get(f"plinth.{tag}"), tag
    assert version.tags["plinth.pipeline_name"] == PIPELINE_NAME
    parent = pipeline_runs(client)[0]
    assert version.tags["plinth.pipeline_run_id"] == parent.info.run_id
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[tracking.TAG_DECISION] == "passed"
    assert version.tags["plinth.task"] == parent.data.tags["plinth.task"] == "binary"
    # Signed by the register step with the key it made once beside the store; what serving verifies with.
    assert version.tags[signing.TAG_DIGEST].startswith("sha256:")
    public = Path(client.tracking_uri.removeprefix("sqlite:///")).parent / "keys" / signing.PUBLIC_KEY_FILE
    assert version.tags[signing.TAG_KEY] == signing.key_id(public.read_bytes())
    # The trigger parameter reaches the version and the pipeline's run through the register step.
    for tags in (version.tags, parent.data.tags):
        assert tags["plinth.trigger.kind"] == "input_drift"
        assert tags["plinth.trigger.reason"] == "PSI of radius above 0.25"
        assert json.loads(tags["plinth.trigger.values"]) == {"psi.radius": 0.41}
    # The winner's global importance is measured on the evaluation rows the register step is handed.
    importance = client.download_artifacts(version.tags["plinth.candidate_run_id"], "explain/importance.json")
    assert json.loads(Path(importance).read_text())["rows_from"] == "evaluation"
    assert version.tags["plinth.importance.top"]


def test_every_candidate_is_a_nested_run_with_metrics_and_plots(twice):
    client, _, _ = twice
    parent = pipeline_runs(client)[0]
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(run.data.tags["plinth.candidate"] for run in children) == ["hgb", "sklearn", "torch", "xgboost"]
    for child in children:
        expected = {"test_roc_auc", "test_accuracy", "test_f1", "test_f1_macro", "test_log_loss", "fit_seconds"}
        assert expected <= set(child.data.metrics)
        plots = {artifact.path for artifact in client.list_artifacts(child.info.run_id, "plots")}
        assert plots == {"plots/roc_curve.png", "plots/confusion_matrix.png"}
        # The search (2 trials) ran through kfp.local's ParallelFor: its trials are the candidate's children.
        trials = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{child.info.run_id}'")
        assert len(trials) == 2, child.data.tags["plinth.candidate"]
        assert all(trial.data.params and "validation_roc_auc" in trial.data.metrics for trial in trials)
        assert any(key.startswith("plinth.search.best_") for key in child.data.params)
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "validation")] == ["validation/report.md"]


def test_registered_model_carries_signature_example_and_profile(twice, tmp_path):
    client, _, _ = twice
    import mlflow

    mlflow.set_tracking_uri(client._tracking_client.tracking_uri)
    local_dir = mlflow.artifacts.download_artifacts(f"models:/{DEFAULT_MODEL_NAME}@champion", dst_path=str(tmp_path))
    profile = modeling.load_profile(local_dir)
    assert len(profile.feature_names) == 30
    assert profile.target == "target"
    assert profile.task.kind == "binary"
    info = mlflow.models.get_model_info(f"models:/{DEFAULT_MODEL_NAME}@champion")
    assert info.signature.inputs.input_names()[:2] == ["mean_radius", "mean_texture"]
    assert (Path(local_dir) / "input_example.json").is_file()


def test_second_run_is_gated_against_the_champion(twice):
    client, _, second = twice
    assert second.returncode == 0, second.stderr[-3000:]
    assert "gate          : rejected" in second.stdout
    assert "registered    : nothing (the registry is unchanged)" in second.stdout
    runs = pipeline_runs(client)
    assert len(runs) == 2
    assert "minimum absolute change check failed" in runs[1].data.tags[tracking.TAG_REASON]
    assert [str(v.version) for v in client.search_model_versions(f"name = '{DEFAULT_MODEL_NAME}'")] == ["1"]


def test_bad_data_stops_at_validate_with_a_report_and_no_registry_change(tmp_path):
    frame = pd.DataFrame({"a": [1.0] * 60, "b": [f"{i}.5" for i in range(58)] + ["oops", "n/a"], "label": [1] * 60})
    source = tmp_path / "bad.csv"
    frame.to_csv(source, index=False)
    result = train(tmp_path / "home", "--source", str(source), "--target", "label")
    assert result.returncode == 1
    assert "step          : validate" in result.stderr
    assert "column 'b', rule numeric" in result.stderr
    assert "1 of 59 values are not numbers (e.g. 'oops')" in result.stderr
    assert "column 'label', rule task: classification needs at least 2 classes" in result.stderr
    client = tracking.connect(local_tracking_uri(tmp_path / "home"))
    assert not client.search_registered_models()
    assert pipeline_runs(client)[0].info.status == "FAILED"
