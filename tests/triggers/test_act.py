"""The guard rails end to end on a real MLflow registry, with a fake training command as the run."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipelines.triggers.act import START_FAILED, Actor
from pipelines.triggers.policy import BACKOFF, COALESCE, COOL_DOWN, START, Guardrails, Trigger
from pipelines.triggers.record import EXPERIMENT, LEASE, TriggerRecord
from pipelines.triggers.start import LocalStarter
from tests.triggers.conftest import MODEL, argv_of, fake_command

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RAILS = Guardrails(cool_down=timedelta(hours=1), max_runs_per_day=3, failure_backoff=timedelta(minutes=10))


def drift(at: datetime = NOW) -> Trigger:
    return Trigger("input_drift", "PSI of radius above 0.25", {"psi.radius": 0.4}, at)


def logged(record: TriggerRecord) -> list[dict[str, str]]:
    experiment = record.client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    runs = record.client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    return [run.data.tags for run in runs]


def test_one_run_starts_the_rest_coalesce_then_cool_down(record: TriggerRecord, tmp_path: Path):
    release = tmp_path / "release"
    starter = LocalStarter(tmp_path / "logs", fake_command(tmp_path, block=release), args=["--model-name", MODEL])
    actor = Actor(record, starter, RAILS)

    first = actor.act(drift(), NOW)
    assert first.decision.action == START
    assert first.run.startswith("local:")
    argv = argv_of(tmp_path, first.run)
    assert argv[:2] == ["--model-name", MODEL]
    assert argv[2] == "--trigger"
    assert json.loads(argv[3]) == {
        "kind": "input_drift",
        "reason": "PSI of radius above 0.25",
        "values": {"psi.radius": 0.4},
        "time": "2026-11-23T12:00:00+00:00",
        "decision": "start",
    }
    second = actor.act(drift(NOW + timedelta(minutes=1)), NOW + timedelta(minutes=1))
    assert second.decision.action == COALESCE
    assert first.run in second.decision.reason

    release.touch()
    assert starter.wait(first.run, timeout=30) == 0
    third = actor.act(drift(NOW + timedelta(minutes=2)), NOW + timedelta(minutes=2))
    assert third.decision.action == COOL_DOWN  # the run ended (lease released); the cool-down holds
    history = record.read()
    assert history.in_progress is None
    assert history.runs_by_day == {NOW.date(): 1}
    assert history.last_started == NOW

    tags = logged(record)
    assert [t["plinth.trigger.decision"] for t in tags] == [START, COALESCE, COOL_DOWN]
    assert tags[0]["plinth.trigger.started_run"] == first.run
    assert json.loads(tags[1]["plinth.trigger.values"]) == {"psi.radius": 0.4}
    assert tags[2]["plinth.trigger.decision_reason"] == third.decision.reason


def test_a_failed_run_backs_off(record: TriggerRecord, tmp_path: Path):
    starter = LocalStarter(tmp_path / "logs", fake_command(tmp_path, exit_code=1))
    actor = Actor(record, starter, RAILS)
    run = actor.act(drift(), NOW).run
    assert starter.wait(run, timeout=30) == 1
    later = NOW + timedelta(hours=2)  # past the cool-down: only the failure holds it
    held = actor.act(drift(later), later)
    assert held.decision.action == BACKOFF
    assert record.read().consecutive_failures == 1
    assert actor.act(drift(later), later + timedelta(minutes=10)).decision.action == START


def test_the_history_survives_a_restart_and_a_stale_lease_expires(record: TriggerRecord, tmp_path: Path):
    release = tmp_path / "release"
    starter = LocalStarter(tmp_path / "logs", fake_command(tmp_path, block=release))
    run = Actor(record, starter, RAILS).act(drift(), NOW).run
    other = LocalStarter(tmp_path / "logs2", fake_command(tmp_path))
    restarted = Actor(TriggerRecord(record.client, MODEL), other, RAILS)
    assert restarted.act(drift(), NOW + timedelta(minutes=5)).decision.action == COALESCE
    after_lease = NOW + RAILS.lease + timedelta(seconds=1)  # the run's process is unknown here: only expiry frees it
    second = restarted.act(drift(after_lease), after_lease)
    assert second.decision.action == START
    assert other.wait(second.run, timeout=30) == 0
    release.touch()
    assert starter.wait(run, timeout=30) == 0


def test_a_rollout_in_progress_coalesces(record: TriggerRecord, tmp_path: Path):
    record.client.create_registered_model(MODEL)  # the register step's; the record never creates it
    version = record.client.create_model_version(MODEL, source=str(tmp_path))
    record.client.set_model_version_tag(MODEL, version.version, "plinth.rollout.staging.status", "in_progress")
    starter = LocalStarter(tmp_path / "logs", fake_command(tmp_path))
    outcome = Actor(record, starter, RAILS).act(drift(), NOW)
    assert outcome.decision.action == COALESCE
    assert starter.children == {}
    assert outcome.decision.reason == f"rollout of v{version.version} in progress: input_drift coalesced"


def test_a_command_that_cannot_start_is_recorded_and_backs_off(record: TriggerRecord, tmp_path: Path):
    actor = Actor(record, LocalStarter(tmp_path / "logs", [str(tmp_path / "no-such-command")]), RAILS)
    outcome = actor.act(drift(), NOW)
    assert outcome.decision.action == START_FAILED
    assert "local run not started" in outcome.decision.reason
    assert record.read().in_progress is None
    assert actor.act(drift(), NOW + timedelta(minutes=1)).decision.action == BACKOFF


class RacingClient:
    """The real client, except that another receiver's lease lands right after this one's is written."""

    def __init__(self, client, other: TriggerRecord) -> None:
        self.client, self.other = client, other

    def __getattr__(self, name: str):
        return getattr(self.client, name)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self.client.set_experiment_tag(experiment_id, key, value)
        if key.startswith(f"{LEASE}/") and value:
            self.other.claim(RAILS, NOW)


def test_a_receiver_that_loses_the_claim_coalesces(record: TriggerRecord, tmp_path: Path):
    record.read()
    racing = TriggerRecord(RacingClient(record.client, record), MODEL)  # type: ignore[arg-type]
    starter = LocalStarter(tmp_path / "logs", fake_command(tmp_path))
    outcome = Actor(racing, starter, RAILS).act(drift(), NOW)
    assert outcome.decision.action == COALESCE
    assert "another receiver claimed" in outcome.decision.reason
    assert starter.children == {}
