"""Which rows of a batch come from which request, so that no single request fills the drift window or the log.

The adaptive batcher concatenates the `instances` of concurrent requests into one list before `predict` sees
it, and cuts a request bigger than what is left of a batch in two: the rest goes first into the next batch.
A row count is no measure of how many callers sent it: one request of 1,000 rows would be twice the drift
window, or evict the rows queued for the store. So the request model marks the first row of each request
(a `dict` subclass, `RequestStart`, that carries the request's row count: one copy of one row per request,
nothing per row), and `Requests` reads the marks back, batch after batch, carrying a request that was cut
over to the next batch (a worker scores its batches one at a time, in order).

Each request is numbered, and per request it says which rows count: a random sample of at most
`drift_cap` rows for the drift window (`drift_rows`: a request's first rows are whatever its sender put
first), and its first rows for the prediction log (`log_rows`: ids a sender can know; the rest is answered,
not stored). A batch without marks (a caller other than the HTTP route) counts as one request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, model_validator

from serving.model_service.trace import TRACE, Trace


class RequestStart(dict[str, Any]):
    """The first row of a request (a plain row otherwise), with the request's row count."""

    __slots__ = ("rows", "trace")

    def __init__(self, row: dict[str, Any], rows: int, trace: Trace | None = None) -> None:
        super().__init__(row)
        self.rows = rows
        self.trace = trace  # the gateway's request id (`trace.py`), None without one


def marked(request_model: type[BaseModel]) -> type[BaseModel]:
    """Return `request_model` whose validation marks the first instance as a `RequestStart`."""

    class PredictRequest(request_model):  # type: ignore[misc, valid-type]
        __doc__ = request_model.__doc__

        @model_validator(mode="after")
        def mark_first_row(self) -> Any:
            rows = self.instances
            if rows and type(rows[0]) is not RequestStart:
                rows[0] = RequestStart(rows[0], len(rows), TRACE.get())  # in place: BentoML passes this very list on
            return self

    PredictRequest.__qualname__ = request_model.__qualname__
    return PredictRequest


def marked_rows(rows: list[Any]) -> list[Any]:
    """Mark the first of one request's rows, as the request model does (for callers that build batches)."""
    if rows and type(rows[0]) is not RequestStart:
        rows = [RequestStart(rows[0], len(rows)), *rows[1:]]
    return rows


@dataclass(frozen=True)
class Segment:
    """Rows start:stop of a batch: rows offset:offset+(stop-start) of request `number`."""

    number: int
    offset: int
    start: int
    stop: int
    sample: np.ndarray | None  # the request's rows that count for drift (None: all of them)
    trace: Trace | None = None  # the request's gateway id, stored with its logged rows


class Requests:
    """One worker's view of the requests in its batches: their numbers, and which of their rows count."""

    def __init__(self, drift_cap: int, seed: int | None = None) -> None:
        self.drift_cap = drift_cap
        self.rng = np.random.default_rng(seed)
        self.number, self.offset, self.size = -1, 0, 0
        self.sample: np.ndarray | None = None
        self.trace: Trace | None = None

    def split(self, instances: list[Any]) -> list[Segment]:
        """Return the segments of one batch, in order (a request cut by the batcher continues from the last)."""
        marks = [index for index, row in enumerate(instances) if type(row) is RequestStart]
        bounds = [*marks, len(instances)]
        segments = []
        if bounds[0] > 0:  # the rest of the request the last batch ended in, or an unmarked batch
            if self.offset >= self.size:
                self._open(bounds[0], None)
            segments.append(self._take(0, bounds[0]))
        for index, start in enumerate(marks):
            self._open(instances[start].rows, instances[start].trace)
            segments.append(self._take(start, bounds[index + 1]))
        return segments

    def _open(self, size: int, trace: Trace | None) -> None:
        self.number, self.offset, self.size, self.trace = self.number + 1, 0, size, trace
        self.sample = np.sort(self.rng.choice(size, self.drift_cap, replace=False)) if size > self.drift_cap else None

    def _take(self, start: int, stop: int) -> Segment:
        segment = Segment(self.number, self.offset, start, stop, self.sample, self.trace)
        self.offset += stop - start
        return segment


def drift_rows(segments: list[Segment]) -> tuple[np.ndarray, np.ndarray]:
    """Return (batch rows, request number of each) that enter the drift window: each request's sample."""
    rows, owners = [], []
    for segment in segments:
        if segment.sample is None:
            picked = np.arange(segment.start, segment.stop)
        else:
            end = segment.offset + segment.stop - segment.start
            inside = segment.sample[(segment.sample >= segment.offset) & (segment.sample < end)]
            picked = inside - segment.offset + segment.start
        rows.append(picked)
        owners.append(np.full(len(picked), segment.number, dtype=np.int64))
    return np.concatenate(rows), np.concatenate(owners)


def log_rows(segments: list[Segment], cap: int) -> list[int]:
    """Return the batch rows that go to the prediction log: each request's first `cap` rows."""
    kept: list[int] = []
    for segment in segments:
        room = max(0, cap - segment.offset)
        kept.extend(range(segment.start, min(segment.stop, segment.start + room)))
    return kept
