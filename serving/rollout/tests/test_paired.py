"""Paired shadow answers: joined by ticket whatever order they come in, counted per slice, never paired wrong.

The router tests run real HTTP services on 127.0.0.1 that answer as two hand-made models would: the stable
says "yes" from x >= 0.5, the canary from x >= 0.7, so they disagree on exactly the rows in [0.5, 0.7).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import pytest

from serving.rollout.core.observe import CANARY, STABLE, Observation, TrackSample
from serving.rollout.core.paired import (
    BOTH_RIGHT,
    BOTH_WRONG,
    CANARY_FAILED,
    CANARY_ONLY,
    EXPIRED,
    MISMATCHED,
    STABLE_FAILED,
    STABLE_ONLY,
    PairCounts,
    Pairing,
)
from serving.rollout.edges.mirror import SHADOW_CHURNED, PairedSource
from serving.rollout.edges.router import WeightedRouter
from serving.rollout.tests.http_backend import Backend, wait_until


def answer(labels: list[str], ids: list[str] | None = None) -> bytes:
    rows = [{"label": label, **({"request_id": ids[i]} if ids else {})} for i, label in enumerate(labels)]
    return json.dumps({"model_name": "m", "model_version": "1", "predictions": rows}).encode()


def request(*rows: dict) -> bytes:
    return json.dumps({"instances": list(rows)}).encode()


def model(cut: float, version: str):
    """A classifier as a function of a /predict body: "yes" from x >= cut."""

    def predict(body: dict) -> dict:
        if "instances" not in body:  # POST /feedback
            return {"request_id": body["request_id"], "result": "accepted", "model_version": version}
        rows = [
            {"label": "yes" if row["x"] >= cut else "no", "request_id": f"{version}-{row['x']}"}
            for row in body["instances"]
        ]
        return {"model_name": "m", "model_version": version, "predictions": rows}

    return predict


def test_halves_arriving_in_any_order_pair_with_their_own_request_only() -> None:
    pairing = Pairing()
    tickets = [pairing.open(request({"x": i})) for i in range(4)]
    # The canary disagrees on tickets 1 and 3 only; its answers come first, in reverse order.
    for ticket in reversed(tickets):
        pairing.canary(ticket, 200, answer(["no" if ticket in (tickets[1], tickets[3]) else "yes"]))
    assert pairing.snapshot().pairs == 0
    for ticket in (tickets[2], tickets[0], tickets[3], tickets[1]):
        pairing.stable(ticket, 200, answer(["yes"]))
    counts = pairing.snapshot()
    assert (counts.pairs, counts.churned, counts.unpaired) == (4, 2, {})
    assert pairing.pending == {}


def test_a_failed_half_is_counted_unpaired_and_its_other_half_pairs_with_nothing() -> None:
    pairing = Pairing()
    failed_copy, failed_stable, mismatched, ok = (pairing.open(request({"x": 1})) for _ in range(4))
    pairing.stable(failed_copy, 200, answer(["yes"]))
    pairing.canary(failed_copy, 502, b"")  # the copy got no answer
    pairing.canary(failed_stable, 200, answer(["no"]))
    pairing.stable(failed_stable, 503, b"")
    pairing.stable(mismatched, 200, answer(["yes", "no"]))
    pairing.canary(mismatched, 200, answer(["yes"]))  # another shape: not comparable row by row
    pairing.canary(ok, 200, answer(["no"]))
    pairing.stable(ok, 200, answer(["no"]))
    # Late halves of finished tickets and unknown tickets change nothing.
    pairing.canary(failed_stable, 200, answer(["yes"]))
    pairing.stable(99, 200, answer(["yes"]))
    counts = pairing.snapshot()
    assert (counts.pairs, counts.churned) == (1, 0)
    assert counts.unpaired == {CANARY_FAILED: 1, STABLE_FAILED: 1, MISMATCHED: 1}


def test_tickets_beyond_capacity_expire_oldest_first() -> None:
    pairing = Pairing(pending_capacity=2)
    first, second, third = (pairing.open(request({"x": 1})) for _ in range(3))
    for ticket in (first, second, third):
        pairing.canary(ticket, 200, answer(["yes"]))
        pairing.stable(ticket, 200, answer(["yes"]))
    counts = pairing.snapshot()
    assert (counts.pairs, counts.unpaired) == (2, {EXPIRED: 1})


def test_regression_pairs_churn_beyond_the_relative_tolerance_and_rows_split_into_slices() -> None:
    pairing = Pairing()
    body = request({"plan": "monthly", "x": 1.0}, {"plan": "yearly", "x": 2.0}, {"plan": "monthly", "x": 3.0})
    ticket = pairing.open(body)
    values = {"stable": [100.0, 0.0, 10.0], "canary": [104.0, 0.0, 12.0]}  # 4 % and 0 agree, 20 % churns
    for side, found in values.items():
        rows = [{"prediction": value} for value in found]
        getattr(pairing, side)(ticket, 200, json.dumps({"predictions": rows}).encode())
    counts = pairing.snapshot()
    assert (counts.pairs, counts.churned) == (3, 1)
    # Numbers are no slice; the categorical feature is, value by value.
    assert counts.slices == {("plan", "monthly"): [2, 1], ("plan", "yearly"): [1, 0]}


def test_labels_through_feedback_fill_mcnemars_cells_once_per_pair() -> None:
    pairing = Pairing()
    ticket = pairing.open(request({"x": 1}, {"x": 2}))
    pairing.stable(ticket, 200, answer(["yes", "no"], ids=["a", "b"]))
    pairing.canary(ticket, 200, answer(["yes", "yes"], ids=["c1", "c2"]))
    for request_id, label in (("a", "yes"), ("b", "no"), ("b", "no"), ("unknown", "yes")):
        pairing.feedback(json.dumps({"request_id": request_id, "label": label}).encode())
    pairing.feedback(b"not json")
    assert pairing.snapshot().labelled == {BOTH_RIGHT: 1, STABLE_ONLY: 1}
    assert CANARY_ONLY not in pairing.snapshot().labelled


def test_counts_since_a_snapshot() -> None:
    before = PairCounts(3, 1, {("f", "v"): [3, 1]}, {EXPIRED: 1})
    now = PairCounts(10, 4, {("f", "v"): [5, 2], ("f", "w"): [5, 2]}, {EXPIRED: 2, CANARY_FAILED: 1})
    since = now.since(before)
    assert (since.pairs, since.churned, since.churn) == (7, 3, 3 / 7)
    assert since.slices == {("f", "v"): [2, 1], ("f", "w"): [5, 2]}
    assert since.unpaired == {EXPIRED: 1, CANARY_FAILED: 1}


@pytest.fixture
def models() -> Iterator[tuple[Backend, Backend]]:
    held = threading.Event()
    stable, canary = Backend(STABLE, body=model(0.5, "1")), Backend(CANARY, gate=held, body=model(0.7, "2"))
    yield stable, canary
    held.set()
    stable.close()
    canary.close()


def test_the_router_pairs_two_models_and_counts_the_known_share_of_churn(models) -> None:
    stable, canary = models
    router = WeightedRouter(stable.url, canary.url, retry_on_stable=False).start()
    router.set_mirror(True)
    churned_before = SHADOW_CHURNED.labels("", "")._value.get()
    source = PairedSource(_Empty(), lambda: router.mirror)
    try:
        source.start()
        held, rest = list(range(50, 60)), [*range(50), *range(60, 100)]
        with httpx.Client() as client:
            for i in held:
                client.post(f"{router.url}/predict", json={"instances": [{"x": i / 100}]})
            # Every stable answer came first (the canary holds its copies): nothing pairs until the copies answer.
            assert wait_until(lambda: len(canary.seen) == len(held))
            assert router.mirror.pairing.snapshot().pairs == 0
            canary.gate.set()
            for i in rest:
                client.post(f"{router.url}/predict", json={"instances": [{"x": i / 100}]})
        assert wait_until(lambda: source.observe(1.0).pairs.pairs == 100)  # type: ignore[union-attr]
        pairs = source.observe(1.0).pairs
        assert pairs is not None
        assert (pairs.churned, pairs.unpaired) == (20, {})  # x in [0.5, 0.7): exactly 20 of 100
        assert SHADOW_CHURNED.labels("", "")._value.get() - churned_before == 20
        # Labels for the stable's answers come back through the router: who was right, pair by pair.
        with httpx.Client() as client:
            for x, label in ((0.55, "no"), (0.56, "yes"), (0.1, "no"), (0.9, "no")):
                client.post(f"{router.url}/feedback", json={"request_id": f"1-{x}", "label": label})
        cells = {CANARY_ONLY: 1, STABLE_ONLY: 1, BOTH_RIGHT: 1, BOTH_WRONG: 1}
        assert router.mirror.pairing.snapshot().labelled == cells
    finally:
        router.stop()


class _Empty:
    """A metrics source with no data: the pairs are all the test reads."""

    def start(self) -> None:
        """Nothing to mark."""

    def observe(self, window_seconds: float) -> Observation:
        return Observation(stable=TrackSample(), canary=TrackSample())
