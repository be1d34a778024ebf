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


def test_a_record_written_before_digests_were_kept_still_reads_and_rejects_by_number() -> None:
    old = '{"phase": "failed", "canary_version": "3", "rejected": {"3": "success-rate failed"}}'
    status = RolloutStatus.from_json(old)
    assert (status.rejected, status.rejected_digests, status.canary_digest, status.held) == (
        {"3": "success-rate failed"}, {}, None, None,
    )  # fmt: skip
    assert status.rejected_as("sha256:aa", "7") is None


def test_the_digest_of_a_rejected_version_rejects_its_copies_and_a_retry_forgets_both() -> None:
    status = RolloutStatus()
    status.reject("3", "success-rate failed", "sha256:aa")
    again = RolloutStatus.from_json(status.to_json())
    assert again.rejected_as("sha256:aa", "7") == "3"
    assert again.rejected_as("sha256:aa", "3") is None  # a version is no copy of itself
    assert again.rejected_as("sha256:bb", "7") is None
    again.forgive("7", "sha256:aa")
    assert again.rejected_as("sha256:aa", "7") is None


def test_the_record_keeps_the_latest_rejected_digests() -> None:
    status = RolloutStatus()
    for version in range(1, 201):
        status.reject(str(version), "bad", f"sha256:{version:064x}")
    assert len(status.rejected_digests) == MAX_REJECTED
    assert status.rejected_as(f"sha256:{200:064x}", "999") == "200"
    assert status.rejected_as(f"sha256:{1:064x}", "999") is None
