"""The cluster starter and the schedule at the kfp.Client boundary (a fake client records the calls)."""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipelines.triggers.policy import Trigger
from pipelines.triggers.schedule import main as schedule_main
from pipelines.triggers.schedule import schedule
from pipelines.triggers.start import FAILED, RUNNING, SUCCEEDED, ClusterStarter, StartError

TRIGGER = Trigger("input_drift", "PSI above 0.25", {"psi.x": 0.4}, datetime(2026, 11, 23, 12, 0, tzinfo=UTC))


@dataclass
class FakeClient:
    """What kfp.Client answers, kept in memory: runs, one experiment, recurring runs."""

    states: dict[str, str] = field(default_factory=dict)
    recurring: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    fail: bool = False

    def create_run_from_pipeline_package(self, pipeline_file: str, **kwargs: Any) -> SimpleNamespace:
        if self.fail:
            raise ConnectionError("refused\nsecond line")
        self.calls.append("create_run")
        self.last_run = {"pipeline_file": pipeline_file, **kwargs}
        return SimpleNamespace(run_id="run-1")

    def get_run(self, run_id: str) -> SimpleNamespace:
        return SimpleNamespace(state=self.states[run_id])

    def create_experiment(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(experiment_id=f"exp-{name}")

    def list_recurring_runs(self, page_token: str, page_size: int, experiment_id: str) -> SimpleNamespace:
        runs = [
            SimpleNamespace(recurring_run_id=rid, display_name=spec["job_name"])
            for rid, spec in self.recurring.items()
            if spec["experiment_id"] == experiment_id
        ]
        start = int(page_token or 0)  # pages of one, so paging is exercised
        return SimpleNamespace(
            recurring_runs=runs[start : start + 1], next_page_token=str(start + 1) if start + 1 < len(runs) else ""
        )

    def create_recurring_run(self, **spec: Any) -> SimpleNamespace:
        rid = f"rr-{len(self.calls)}"
        self.calls.append(f"create {rid}")
        self.recurring[rid] = spec
        return SimpleNamespace(recurring_run_id=rid)

    def delete_recurring_run(self, recurring_run_id: str) -> None:
        self.calls.append(f"delete {recurring_run_id}")
        del self.recurring[recurring_run_id]


def test_cluster_starter_passes_the_trigger_and_reads_the_state(tmp_path: Path):
    client = FakeClient(states={"run-1": "RUNNING"})
    starter = ClusterStarter(client, tmp_path / "training-cpu.yaml", "plinth-training", {"model_name": "m"})
    run = starter.start(TRIGGER, "start")
    assert run == "kfp:run-1"
    assert client.last_run["pipeline_file"] == str(tmp_path / "training-cpu.yaml")
    assert client.last_run["experiment_name"] == "plinth-training"
    assert client.last_run["arguments"]["model_name"] == "m"
    assert json.loads(client.last_run["arguments"]["trigger"])["values"] == {"psi.x": 0.4}
    assert starter.state(run) == RUNNING
    client.states["run-1"] = "SUCCEEDED"
    assert starter.state(run) == SUCCEEDED
    client.states["run-1"] = "CANCELED"
    assert starter.state(run) == FAILED
    assert starter.state("local:7") is None


def test_cluster_starter_failure_is_one_line(tmp_path: Path):
    starter = ClusterStarter(FakeClient(fail=True), tmp_path / "p.yaml", "e", {})
    with pytest.raises(StartError, match=r"^KFP run not created: ConnectionError: refused$"):
        starter.start(TRIGGER, "start")


def test_schedule_is_idempotent(tmp_path: Path):
    client = FakeClient()
    client.recurring["rr-other"] = {"job_name": "someone-elses", "experiment_id": "exp-plinth-training"}
    package = tmp_path / "training-cpu.yaml"
    first, replaced = schedule(client, package, "plinth-training", "nightly", "0 0 3 * * *", {"git_commit": "abc"})
    assert replaced == 0
    second, replaced = schedule(client, package, "plinth-training", "nightly", "0 30 4 * * *", {"git_commit": "abc"})
    assert replaced == 1
    assert second != first
    assert client.calls[-2:] == [f"create {second}", f"delete {first}"]  # created before the old one goes
    assert sorted(client.recurring) == sorted([second, "rr-other"])
    spec = client.recurring[second]
    assert spec["cron_expression"] == "0 30 4 * * *"
    assert spec["max_concurrency"] == 1
    assert spec["pipeline_package_path"] == str(package)
    assert json.loads(spec["params"]["trigger"])["kind"] == "schedule"


def test_schedule_command_line_refuses_a_five_field_cron(capsys: pytest.CaptureFixture[str]):
    assert schedule_main(["--host", "http://127.0.0.1:1", "--cron", "0 3 * * *"]) == 2
    assert "KFP wants 6 fields, seconds first" in capsys.readouterr().err


def test_schedule_command_line_needs_a_host(capsys: pytest.CaptureFixture[str]):
    assert schedule_main(["--cron", "0 0 3 * * *"]) == 1
    assert capsys.readouterr().err.startswith("error: KFP_HOST is not set")
