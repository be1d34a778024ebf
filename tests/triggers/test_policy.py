from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.triggers.policy import (
    BACKOFF,
    COALESCE,
    COOL_DOWN,
    DAILY_MAX,
    START,
    Guardrails,
    History,
    Lease,
    Trigger,
    backoff,
    decide,
    parse_duration,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RAILS = Guardrails(cool_down=timedelta(hours=1), max_runs_per_day=2, failure_backoff=timedelta(minutes=10))
DRIFT = Trigger("input_drift", "PSI above 0.25", {"psi.x": 0.4}, NOW)


def test_a_quiet_history_starts():
    decision = decide(DRIFT, History(), RAILS, NOW)
    assert decision.starts
    assert decision.action == START
    assert decision.reason == "input_drift: PSI above 0.25"


def test_a_run_in_progress_coalesces_until_its_lease_expires():
    lease = Lease("t", "local:42", NOW - timedelta(minutes=5), NOW + timedelta(minutes=1))
    decision = decide(DRIFT, History(in_progress=lease), RAILS, NOW)
    assert decision.action == COALESCE
    assert "local:42" in decision.reason
    after = decide(DRIFT, History(in_progress=lease), RAILS, NOW + timedelta(minutes=2))
    assert after.starts
    assert after.reason.endswith("(lease of run local:42 expired 2026-11-23 12:01:00Z)")


def test_a_rollout_in_progress_coalesces():
    decision = decide(DRIFT, History(rollout_in_progress="3"), RAILS, NOW)
    assert (decision.action, decision.reason) == (COALESCE, "rollout of v3 in progress: input_drift coalesced")


def test_cool_down_holds_until_it_has_passed():
    history = History(last_started=NOW - timedelta(minutes=59), runs_by_day={NOW.date(): 1})
    decision = decide(DRIFT, history, RAILS, NOW)
    assert decision.action == COOL_DOWN
    assert "until 2026-11-23 12:01:00Z" in decision.reason
    assert decide(DRIFT, history, RAILS, NOW + timedelta(minutes=1)).starts


def test_daily_maximum_counts_utc_days():
    history = History(last_started=NOW - timedelta(hours=5), runs_by_day={NOW.date(): 2})
    assert decide(DRIFT, history, RAILS, NOW).action == DAILY_MAX
    tomorrow = datetime(2026, 11, 24, 0, 0, 1, tzinfo=UTC)
    assert decide(DRIFT, history, RAILS, tomorrow).starts
    assert History(runs_by_day={date(2026, 11, 22): 9}).runs_by_day.get(NOW.date(), 0) == 0


def test_failures_back_off_exponentially_and_are_capped():
    assert [backoff(RAILS, n) for n in range(4)] == [timedelta(0), *(timedelta(minutes=m) for m in (10, 20, 40))]
    assert backoff(RAILS, 40) == RAILS.max_backoff
    history = History(last_failed=NOW - timedelta(minutes=15), consecutive_failures=2)
    decision = decide(DRIFT, history, RAILS, NOW)
    assert decision.action == BACKOFF
    assert "held until 2026-11-23 12:05:00Z" in decision.reason
    assert decide(DRIFT, history, RAILS, NOW + timedelta(minutes=5)).starts


def test_trigger_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="trigger kind 'drift'"):
        Trigger("drift", "typo")


def test_guardrails_load_from_yaml(tmp_path: Path):
    path = tmp_path / "rails.yaml"
    path.write_text("coolDown: 2h\nmaxRunsPerDay: 5\nfailureBackoff: 90\n")
    rails = Guardrails.load(path)
    assert (rails.cool_down, rails.max_runs_per_day, rails.failure_backoff) == (
        timedelta(hours=2),
        5,
        timedelta(seconds=90),
    )
    assert rails.lease == Guardrails().lease


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cooldown: 2h\n", "unknown key"),
        ("maxRunsPerDay: -1\n", "maxRunsPerDay must be"),
        ("coolDown: soon\n", "duration 'soon'"),
    ],
)
def test_guardrails_refuse_bad_yaml(tmp_path: Path, text: str, message: str):
    path = tmp_path / "rails.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        Guardrails.load(path)


def test_durations():
    assert parse_duration("1d") == timedelta(days=1)
    assert parse_duration(" 30m ") == timedelta(minutes=30)
