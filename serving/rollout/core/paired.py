"""Paired shadow comparison: the stable's and the canary's answers to the same request, joined by one id.

In the shadow phase both versions answer every mirrored request. Distributions compared one against the other
miss a canary that is wrong with the stable's spread of confidence; pairing the two answers to the same row
does not: a classifier's *label churn* (another label for the same row) or a regressor's relative difference
above `RELATIVE_TOLERANCE` is counted row by row. The halves arrive in either order (the mirror's copy may
answer first) and either may fail: a ticket pairs only its own two halves, and a failed or never-answered half
is counted as unpaired by reason, never paired with another request's answer.

Counts are also broken down per feature slice (the value of a categorical feature in the request row), and,
when a label arrives for the stable's `request_id` (`POST /feedback` through the router), into the four cells
of McNemar's paired test of who is right.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from serving.rollout.core.pair_counts import PairCounts

# A regression pair churns when |a - b| / max(|a|, |b|) exceeds this (5 %); 0 and 0 agree.
RELATIVE_TOLERANCE = 0.05
# Tickets waiting for their other half, and answered pairs remembered for a later label: oldest first out.
PENDING_CAPACITY = 4096
LABELLED_CAPACITY = 8192
# Distinct values counted per slice feature (later ones count as OTHER_VALUE), so the labels stay bounded.
MAX_SLICE_VALUES = 20
OTHER_VALUE = "other"
# Why a ticket ended without a pair.
STABLE_FAILED, CANARY_FAILED, MISMATCHED, EXPIRED = "stable_failed", "canary_failed", "mismatched", "expired"
# Why a stored answer found no pair (`joined.py`): the other version stored none, or one id came twice.
STABLE_MISSING, CANARY_MISSING, DUPLICATE = "stable_missing", "canary_missing", "duplicate"
# McNemar's cells: which of the two was right on a labelled pair.
BOTH_RIGHT, STABLE_ONLY, CANARY_ONLY, BOTH_WRONG = "both_right", "stable_only", "canary_only", "both_wrong"


def predictions(content: bytes) -> list[dict[str, Any]] | None:
    """Return the `predictions` of a /predict answer body, None when it is not one."""
    try:
        found = json.loads(content).get("predictions")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, list) and all(isinstance(one, dict) for one in found) else None


def churned(stable: dict[str, Any], canary: dict[str, Any]) -> bool | None:
    """Return whether one row's two answers differ (label, or value beyond the tolerance); None: not comparable."""
    if "label" in stable and "label" in canary:
        return str(stable["label"]) != str(canary["label"])
    a, b = stable.get("prediction"), canary.get("prediction")
    if isinstance(a, int | float) and isinstance(b, int | float):
        scale = max(abs(a), abs(b))
        return scale > 0 and abs(a - b) / scale > RELATIVE_TOLERANCE
    return None


def verdicts(stable: list[dict[str, Any]], canary: list[dict[str, Any]]) -> list[bool] | None:
    """Return whether each row's two answers churned; None when the answers cannot be compared row by row."""
    if len(stable) != len(canary):
        return None
    found = [churned(a, b) for a, b in zip(stable, canary, strict=True)]
    return None if any(verdict is None for verdict in found) else [bool(verdict) for verdict in found]


def cell(stable_label: str, canary_label: str, truth: Any) -> str:
    """Return McNemar's cell of a labelled pair: which of the two answered the true label."""
    right = (stable_label == str(truth), canary_label == str(truth))
    return {(True, True): BOTH_RIGHT, (True, False): STABLE_ONLY, (False, True): CANARY_ONLY}.get(right, BOTH_WRONG)


class SliceValues:
    """The (feature, value) slices of rows: categorical (string or bool) values, MAX_SLICE_VALUES a feature."""

    def __init__(self) -> None:
        self.seen: dict[str, set[str]] = {}

    def keys(self, row: dict[str, Any]) -> list[tuple[str, str]]:
        """Return a row's slices; a feature's values past the cap count as OTHER_VALUE."""
        keys = []
        for feature, value in row.items():
            if not isinstance(value, str | bool):
                continue
            seen = self.seen.setdefault(feature, set())
            text = str(value)
            if text not in seen and len(seen) >= MAX_SLICE_VALUES:
                text = OTHER_VALUE
            seen.add(text)
            keys.append((feature, text))
        return keys


def rows_of(body: bytes) -> list[dict[str, Any]]:
    """Return a /predict request's instances as records (records or columnar); [] when unreadable."""
    try:
        instances = json.loads(body).get("instances")
    except (ValueError, AttributeError):
        return []
    if isinstance(instances, dict):
        columns = {k: v for k, v in instances.items() if isinstance(v, list)}
        return [dict(zip(columns, values, strict=False)) for values in zip(*columns.values(), strict=False)]
    return [row for row in instances if isinstance(row, dict)] if isinstance(instances, list) else []


@dataclass
class Ticket:
    """One mirrored request: its body, and each half's answer once it came (None: not yet)."""

    body: bytes
    stable: tuple[int, bytes] | None = None
    canary: tuple[int, bytes] | None = None


class Pairing:
    """Joins each mirrored request's two answers by ticket and counts agreement; safe from any thread."""

    def __init__(
        self, on_counted: Callable[[PairCounts], None] | None = None, pending_capacity: int = PENDING_CAPACITY
    ) -> None:
        # Told each event's counts (the mirror exports them as Prometheus counters), under the lock.
        self.on_counted = on_counted
        self.capacity = pending_capacity
        self.counts = PairCounts()
        self.lock = threading.Lock()
        self.tickets = itertools.count(1)
        self.pending: OrderedDict[int, Ticket] = OrderedDict()
        # The stable's request_id -> (stable's label, canary's label), for labels that come later.
        self.answered: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self.slices = SliceValues()

    def open(self, body: bytes) -> int:
        """Return a new ticket for a request whose copy the mirror took."""
        with self.lock:
            ticket = next(self.tickets)
            self.pending[ticket] = Ticket(body)
            while len(self.pending) > self.capacity:
                self.pending.popitem(last=False)
                self._unpaired(EXPIRED)
            return ticket

    def stable(self, ticket: int, status: int, content: bytes) -> None:
        """Take the stable's answer to `ticket` (status 502 with no body: none came)."""
        self._half(ticket, "stable", status, content)

    def canary(self, ticket: int, status: int, content: bytes) -> None:
        """Take the canary's answer to `ticket`'s mirrored copy."""
        self._half(ticket, "canary", status, content)

    def snapshot(self) -> PairCounts:
        """Return a copy of the counts so far."""
        with self.lock:
            return self.counts.copy()

    def _count(self, event: PairCounts) -> None:
        self.counts.add(event)
        if self.on_counted is not None:
            self.on_counted(event)

    def _unpaired(self, reason: str) -> None:
        self._count(PairCounts(unpaired={reason: 1}))

    def _half(self, ticket: int, side: str, status: int, content: bytes) -> None:
        with self.lock:
            found = self.pending.get(ticket)
            if found is None:  # expired, or its other half already failed it
                return
            setattr(found, side, (status, content))
            if status != 200:
                del self.pending[ticket]
                self._unpaired(STABLE_FAILED if side == "stable" else CANARY_FAILED)
            elif found.stable is not None and found.canary is not None:
                del self.pending[ticket]
                self._pair(found, found.stable[1], found.canary[1])

    def _pair(self, ticket: Ticket, stable_body: bytes, canary_body: bytes) -> None:
        stable, canary = predictions(stable_body), predictions(canary_body)
        if stable is None or canary is None:
            self._unpaired(MISMATCHED)
            return
        found = verdicts(stable, canary)
        if found is None:
            self._unpaired(MISMATCHED)
            return
        rows, event = rows_of(ticket.body), PairCounts()
        for index, (verdict, a, b) in enumerate(zip(found, stable, canary, strict=True)):
            event.add(PairCounts(1, int(verdict)))
            for key in self.slices.keys(rows[index] if index < len(rows) else {}):
                event.add(PairCounts(slices={key: [1, int(verdict)]}))
            if isinstance(a.get("request_id"), str) and "label" in a:
                self.answered[a["request_id"]] = (str(a["label"]), str(b["label"]))
                while len(self.answered) > LABELLED_CAPACITY:
                    self.answered.popitem(last=False)
        self._count(event)

    def feedback(self, body: bytes) -> None:
        """Take an accepted `POST /feedback` body: a label for a paired stable answer fills McNemar's cells."""
        try:
            data = json.loads(body)
            request_id, label = data["request_id"], data["label"]
        except (ValueError, TypeError, KeyError):
            return
        with self.lock:
            labels = self.answered.pop(request_id, None) if isinstance(request_id, str) else None
            if labels is None:
                return
            self._count(PairCounts(labelled={cell(*labels, label): 1}))
