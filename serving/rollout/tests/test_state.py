"""The controller's record stays one small ConfigMap however many versions a long-lived environment rejects."""

from __future__ import annotations

from serving.rollout.core.state import MAX_REASON, MAX_REJECTED, RolloutStatus, State


def test_the_record_keeps_the_latest_rejections_each_cut_short() -> None:
    status = RolloutStatus()
    for version in range(1, 1001):
        status.reject(str(version), f"v{version} " + "x" * 10_000)
    assert len(status.rejected) == MAX_REJECTED
    assert list(status.rejected) == [str(version) for version in range(1001 - MAX_REJECTED, 1001)]
    assert all(len(reason) == MAX_REASON for reason in status.rejected.values())
    size = sum(len(key) + len(value) for key, value in State(stable_version="1000", status=status).data().items())
    assert size < 64 * 1024  # far below the API server's 1 MiB for a ConfigMap's data


def test_a_version_rejected_again_moves_to_the_newest_place() -> None:
    status = RolloutStatus()
    status.reject("1", "first")
    status.reject("2", "second")
    status.reject("1", "again")
    assert list(status.rejected.items()) == [("2", "second"), ("1", "again")]


def test_a_record_written_before_promotions_had_their_own_deadline_still_reads() -> None:
    old = '{"phase": "promoting", "canary_version": "3", "started_at": 12.5}'
    status = RolloutStatus.from_json(old)
    assert (status.phase, status.canary_version, status.promoting_since) == ("promoting", "3", 0.0)
