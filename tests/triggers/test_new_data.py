"""The new_data trigger on a real SQLite registry: hashing as ingest does, the lease, the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from components.common import tracking
from components.common.state import local_tracking_uri
from components.ingest.core import IngestError, dataset_hash, load_source
from pipelines.triggers.new_data import DATA_HASH, build_parser, check, check_and_act, main
from pipelines.triggers.policy import COALESCE, START
from pipelines.triggers.record import TriggerRecord
from pipelines.triggers.start import LocalStarter
from pipelines.triggers.wiring import build
from serving.rollout.tests.http_backend import wait_until
from tests.triggers.conftest import MODEL, argv_of, fake_command
from tests.triggers.test_act import logged


def write_source(path: Path, shift: float = 0.0) -> str:
    """Write a small labelled CSV at `path`; return the hash ingest gives it."""
    pd.DataFrame({"x": [1.0 + shift, 2.0, 3.0], "label": [0, 1, 0]}).to_csv(path, index=False)
    return dataset_hash(load_source(str(path)))


def add_version(client: MlflowClient, tmp_path: Path, data_hash: str, alias: str = "") -> str:
    """Register a version trained on `data_hash`, as the register step tags it, and give it `alias`."""
    if not client.search_registered_models(filter_string=f"name = '{MODEL}'"):
        client.create_registered_model(MODEL)
    version = str(client.create_model_version(MODEL, str(tmp_path / "model"), tags={DATA_HASH: data_hash}).version)
    if alias:
        client.set_registered_model_alias(MODEL, alias, version)
    return version


def test_no_champion_yet_asks_for_a_first_run(record: TriggerRecord, tmp_path: Path):
    source = tmp_path / "data.csv"
    digest = write_source(source)
    trigger = check(str(source), record.client, MODEL, target="label")
    assert trigger is not None
    assert trigger.kind == "new_data"
    assert trigger.reason == f"no champion yet: {source} (sha256 {digest[:12]})"
    assert trigger.values == {"rows": 3}


def test_a_source_the_champion_was_trained_on_fires_nothing(record: TriggerRecord, tmp_path: Path):
    source = tmp_path / "data.csv"
    add_version(record.client, tmp_path, write_source(source), alias="champion")
    assert check(str(source), record.client, MODEL) is None


def test_changed_data_names_the_source_and_both_hashes(record: TriggerRecord, tmp_path: Path):
    source = tmp_path / "data.csv"
    old = write_source(source)
    add_version(record.client, tmp_path, old, alias="champion")
    new = write_source(source, shift=0.5)
    trigger = check(str(source), record.client, MODEL, target="label")
    assert trigger is not None
    assert trigger.reason == f"{source} changed: sha256 {new[:12]}, champion v1 was trained on {old[:12]}"
    assert trigger.values == {"rows": 3}


def test_a_challenger_already_trained_on_the_data_fires_nothing(record: TriggerRecord, tmp_path: Path):
    source = tmp_path / "data.csv"
    add_version(record.client, tmp_path, write_source(source), alias="champion")
    add_version(record.client, tmp_path, write_source(source, shift=0.5), alias="challenger")
    assert check(str(source), record.client, MODEL) is None


def test_an_unreadable_source_or_a_missing_target_is_an_ingest_error(record: TriggerRecord, tmp_path: Path):
    with pytest.raises(IngestError, match="source file not found"):
        check(str(tmp_path / "absent.csv"), record.client, MODEL)
    source = tmp_path / "data.csv"
    write_source(source)
    with pytest.raises(IngestError, match=r"target column 'y' is not in .*columns: x, label"):
        check(str(source), record.client, MODEL, target="y")


def test_a_change_starts_one_run_on_the_new_data_until_its_version_is_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Checked every interval: the run's lease coalesces the repeats; its registered version silences them."""
    monkeypatch.setenv("PLINTH_HOME", str(tmp_path / "home"))
    source = tmp_path / "data.csv"
    add_version(tracking.connect(local_tracking_uri()), tmp_path, write_source(source), alias="champion")
    digest = write_source(source, shift=0.5)
    args = [f"--model-name={MODEL}", f"--log-dir={tmp_path / 'logs'}", f"--source={source}", "--target=label"]
    wired = build(build_parser().parse_args(args), source=str(source), target="label")
    starter = wired.actor.starter
    assert isinstance(starter, LocalStarter)
    release = tmp_path / "release"
    starter.command = fake_command(tmp_path, block=release)

    first = check_and_act(wired.actor, str(source), MODEL, "label")
    assert first.startswith(f"new_data: start: new_data: {source} changed: sha256 {digest[:12]}")
    [run] = starter.children
    argv = argv_of(tmp_path, run)
    assert argv[:6] == ["--model-name", MODEL, "--source", str(source), "--target", "label"]
    assert json.loads(argv[7])["kind"] == "new_data"
    assert json.loads(argv[7])["values"] == {"rows": 3}

    second = check_and_act(wired.actor, str(source), MODEL, "label")  # the next interval, still training
    assert second.startswith(f"new_data: coalesce: run {run} in progress")
    assert len(starter.children) == 1

    release.touch()
    assert starter.wait(run, timeout=30) == 0
    challenger = add_version(wired.actor.record.client, tmp_path, digest, alias="challenger")  # what register does
    third = check_and_act(wired.actor, str(source), MODEL, "label")
    assert third == f"new_data: unchanged: {source} (sha256 {digest[:12]}, 3 rows) is what v{challenger} was trained on"
    assert wired.actor.record.read().in_progress is None  # the ended run was settled, not left to expire
    assert len(starter.children) == 1
    assert [t["plinth.trigger.decision"] for t in logged(wired.actor.record)] == [START, COALESCE]


def test_the_command_line_says_one_line_and_fails_on_an_unreadable_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("PLINTH_HOME", str(tmp_path / "home"))
    absent = tmp_path / "absent.csv"
    assert main(["--source", str(absent), "--model-name", MODEL]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"error: source file not found: {absent} (give an existing .csv or .parquet path)\n"
    assert captured.out == ""
    assert main(["--source", str(absent), "--every", "soon"]) == 2
    assert capsys.readouterr().err.startswith("error: duration 'soon'")


def test_the_command_line_checks_every_interval_until_interrupted(tmp_path: Path):
    home = tmp_path / "home"
    source = tmp_path / "data.csv"
    add_version(tracking.connect(local_tracking_uri(home)), tmp_path, write_source(source), alias="champion")
    out = tmp_path / "out.txt"
    argv = [sys.executable, "-m", "pipelines.triggers.new_data", "--source", str(source), "--every", "1s"]
    with out.open("w") as stdout:
        watcher = subprocess.Popen(
            [*argv, "--model-name", MODEL],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PLINTH_HOME": str(home)},
        )
    try:
        assert wait_until(lambda: out.read_text().count("\n") >= 2, timeout=60), out.read_text()
    finally:
        watcher.send_signal(signal.SIGINT)
        code = watcher.wait(30)
    lines = out.read_text().splitlines()
    assert code == 0, lines
    assert all(line.startswith(f"new_data: unchanged: {source} ") for line in lines), lines
    assert lines[0].endswith("is what champion v1 was trained on")
