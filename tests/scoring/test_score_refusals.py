"""What the score step refuses, each with one line: an unknown model or alias, an unreadable source, a table
without a model column, an unsigned version where a signature is required, and a tampered one.

The step's core runs in-process against a store of this module's own; one refusal goes through
`make score`'s runner too, to show the line reaches the user. The same model shows `explain`'s contributions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pyarrow.dataset as ds
import pytest

from components.common import signing, tracking
from components.common.state import local_tracking_uri
from components.score.core import EXPERIMENT, Request, ScoringError, run
from serving.bench.demo_model import RegisteredModel, register_plinth_model, register_unsigned_copy

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
MODEL = "plinth-scoring-refusals"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plinth-home")


@pytest.fixture(scope="module")
def model(home: Path) -> RegisteredModel:
    return register_plinth_model(local_tracking_uri(home), MODEL, experiment="scoring-tests")


@pytest.fixture(scope="module")
def source(model: RegisteredModel, home: Path) -> Path:
    path = home / "rows.parquet"
    model.features.head(50).to_parquet(path, index=False)
    return path


def tampered_copy(model: RegisteredModel, name: str) -> None:
    """Register the signed files again under `name` with one byte of the model changed: signed, not as they are."""
    client = tracking.connect(model.tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        uri = client.get_model_version_download_uri(model.name, model.version)
        files = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        data = bytearray((files / "model.skops").read_bytes())
        data[len(data) // 2] ^= 0x01
        (files / "model.skops").write_bytes(bytes(data))
        with mlflow.start_run(experiment_id=tracking.ensure_experiment(client, "tamper", model.tracking_uri)) as made:
            mlflow.log_artifacts(str(files), "model")
            stored = mlflow.get_artifact_uri("model")
    client.create_registered_model(name)
    version = client.create_model_version(name, stored, run_id=made.info.run_id).version
    client.set_registered_model_alias(name, tracking.CHAMPION, str(version))


def refusal(home: Path, request: Request) -> str:
    """Run the step's core; return its one-line error, after checking the run is FAILED saying the same."""
    uri = local_tracking_uri(home)
    with pytest.raises(ScoringError) as raised:
        run(request, uri, EXPERIMENT, "refusal")
    message = str(raised.value)
    assert "\n" not in message
    client = tracking.connect(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    latest = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert latest.info.status == "FAILED"
    assert latest.data.tags["plinth.failure"] == message
    return message


def test_an_unknown_model_or_alias_is_one_line(home, source, tmp_path):
    message = refusal(home, Request(str(source), "nobody", out=str(tmp_path)))
    assert message.startswith("cannot load models:/nobody@champion from sqlite:///")
    assert "nobody" in message.split(": ", 1)[1]
    message = refusal(home, Request(str(source), MODEL, alias="gold", out=str(tmp_path)))
    assert message.startswith(f"cannot load models:/{MODEL}@gold")
    assert "gold" in message.split(": ", 1)[1]


def test_an_unreadable_source_is_one_line(home, model, tmp_path):
    message = refusal(home, Request(str(tmp_path / "missing.parquet"), MODEL, out=str(tmp_path)))
    assert message.startswith(f"source file not found: {tmp_path / 'missing.parquet'}")
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not a parquet file")
    assert refusal(home, Request(str(garbage), MODEL, out=str(tmp_path))).startswith(f"cannot parse {garbage}:")
    url = "s3://key:secret@bucket/table.parquet"
    message = refusal(home, Request(url, MODEL, out=str(tmp_path)))
    assert "credentials in the URL are refused" in message
    assert "secret" not in message


def test_a_table_without_a_model_column_is_one_line(home, model, tmp_path):
    path = tmp_path / "narrow.parquet"
    model.features.drop(columns=["mean_radius", "worst_area"]).head(5).to_parquet(path)
    message = refusal(home, Request(str(path), MODEL, out=str(tmp_path)))
    assert message.startswith(f"{path} lacks the model's input column(s) mean_radius, worst_area;")


def test_an_unsigned_version_is_refused_where_a_signature_is_required(home, model, source, tmp_path):
    version = register_unsigned_copy(model.tracking_uri, model.name, model.version, "notebook-copy")
    tracking.connect(model.tracking_uri).set_registered_model_alias("notebook-copy", tracking.CHAMPION, version)
    request = Request(str(source), "notebook-copy", out=str(tmp_path), require_signature=True)
    message = refusal(home, request)
    assert message == f"notebook-copy v{version} refused: it is not signed and {signing.ENV_REQUIRE_SIGNATURE}=true"


def test_a_tampered_version_is_refused_naming_the_file(home, model, source, tmp_path):
    tampered_copy(model, "tampered-copy")
    message = refusal(home, Request(str(source), "tampered-copy", out=str(tmp_path), require_signature=False))
    assert message.startswith("tampered-copy v1 refused:")
    assert "model.skops differs from its signed digest" in message
    assert not (tmp_path / "predictions").exists()


def test_make_scores_runner_ends_a_refusal_in_one_line_on_stderr(home, model, source, tmp_path):
    env = {**os.environ, "PLINTH_HOME": str(home)}
    command = [sys.executable, "-m", "pipelines.scoring.run_local", "--source", str(source), "--out", str(tmp_path)]
    done = subprocess.run(
        [*command, "--model-name", MODEL, "--alias", "gold"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: score: cannot load models:/{MODEL}@gold from ")


def test_explain_adds_contributions_that_sum_to_each_answers_log_odds(home, model, source, tmp_path):
    summary = run(
        Request(str(source), MODEL, out=str(tmp_path), explain=True), local_tracking_uri(home), EXPERIMENT, "x"
    )
    assert summary.explained == "linear (log_odds)"
    answers = ds.dataset(tmp_path / "predictions", partitioning="hive").to_table()
    base = np.array(answers.column("base_value").combine_chunks().field("1"))
    per_feature = answers.column("contributions").combine_chunks().field("1")
    assert per_feature.type.names == list(model.features.columns)
    total = base + sum(np.array(per_feature.field(name)) for name in per_feature.type.names)
    probability = np.array(answers.column("probability"))
    assert np.allclose(total, np.log(probability / (1 - probability)))
