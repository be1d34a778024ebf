"""`make schedule`/`make submit` PIPELINE=scoring: the scoring package, its own name, its required parameters."""

from __future__ import annotations

import json

import pytest
import yaml

from pipelines.compile import compiled_path
from pipelines.submit import main as submit_main
from pipelines.triggers.schedule import main as schedule_main
from pipelines.triggers.schedule import schedule
from tests.triggers.test_kfp_client import FakeClient

SCORING = compiled_path("cpu", pipeline="scoring")


def test_the_compiled_scoring_pipeline_takes_a_source_an_output_and_a_version_or_alias():
    spec = next(yaml.safe_load_all(SCORING.read_text()))
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert not parameters["source"].get("isOptional")
    assert not parameters["out"].get("isOptional")
    assert parameters["alias"]["defaultValue"] == "champion"
    assert parameters["require_signature"]["defaultValue"] is True
    assert spec["pipelineInfo"]["name"] == "plinth-scoring"


def test_a_scheduled_scoring_run_carries_its_table_output_and_the_schedule_trigger():
    client = FakeClient()
    params = {"source": "s3://bucket/customers/", "out": "s3://bucket/scored/", "git_commit": "abc"}
    recurring, replaced = schedule(client, SCORING, "plinth-scoring", "plinth-scoring-schedule", "0 0 4 * * *", params)
    spec = client.recurring[recurring]
    assert replaced == 0
    assert spec["pipeline_package_path"] == str(SCORING)
    assert spec["params"]["source"] == "s3://bucket/customers/"
    assert json.loads(spec["params"]["trigger"])["kind"] == "schedule"
    assert spec["description"].startswith("plinth-scoring on cron")


@pytest.mark.parametrize("main", [submit_main, schedule_main], ids=["submit", "schedule"])
def test_scoring_without_its_table_and_output_is_one_line(main, capsys: pytest.CaptureFixture[str]):
    args = ["--host", "http://127.0.0.1:1", "--pipeline", "scoring", "--param", "source=s3://b/t.parquet"]
    if main is schedule_main:
        args += ["--cron", "0 0 4 * * *"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err == 'error: the scoring pipeline needs --param out (PARAMS="out=…")'


def test_scoring_has_no_gpu_variant(capsys: pytest.CaptureFixture[str]):
    params = ["--param", "source=s3://b/t", "--param", "out=s3://b/o"]
    assert submit_main(["--host", "http://127.0.0.1:1", "--pipeline", "scoring", "--variant", "gpu", *params]) == 1
    assert "compiled for CPU only" in capsys.readouterr().err
