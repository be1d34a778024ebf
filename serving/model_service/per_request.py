"""Where each request begins in a batch, so that no single request fills the drift window or the prediction log.

The adaptive batcher concatenates the `instances` of concurrent requests into one list before `predict` sees
it. A row count is no measure of how many callers sent it: one request of 1,000 rows would be half the drift
window and its PSI, or evict the rows queued for the store. So the request model marks the first row of each
request (a `dict` subclass, `RequestStart`: one copy of one row per request, nothing per row), `starts` reads
the marks back in the batch, and the caps choose which rows of each request count: a random sample for the
drift window (a request's first rows are whatever its sender put first), the first rows for the log (ids a
sender can predict: the rest of a big request answers but is not stored, and is counted).
A batch without marks (a caller outside the HTTP route) counts as one request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, model_validator


class RequestStart(dict):  # type: ignore[type-arg]
    """The first row of a request (a plain row otherwise): where one caller's rows begin in a batch."""

    __slots__ = ()


def marked(request_model: type[BaseModel]) -> type[BaseModel]:
    """Return `request_model` whose validation marks the first instance as a `RequestStart`."""

    class PredictRequest(request_model):  # type: ignore[misc, valid-type]
        __doc__ = request_model.__doc__

        @model_validator(mode="after")
        def mark_first_row(self) -> Any:
            rows = self.instances
            if rows and type(rows[0]) is not RequestStart:
                rows[0] = RequestStart(rows[0])
            return self

    PredictRequest.__qualname__ = request_model.__qualname__
    return PredictRequest


def starts(instances: Sequence[Any]) -> list[int]:
    """Return the index of each request's first row in a batch (always starting with 0)."""
    found = [index for index, row in enumerate(instances) if type(row) is RequestStart]
    return found if found and found[0] == 0 else [0, *found]


def spans(first_rows: Sequence[int], rows: int) -> list[tuple[int, int]]:
    """Return (start, stop) of each request in a batch of `rows` rows."""
    bounds = [*first_rows, rows]
    return [(bounds[i], bounds[i + 1]) for i in range(len(first_rows)) if bounds[i] < bounds[i + 1]]


def sampled(first_rows: Sequence[int], rows: int, cap: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return (row indices, request number in the batch) keeping at most `cap` random rows of each request."""
    chosen, owner = [], []
    for number, (start, stop) in enumerate(spans(first_rows, rows)):
        size = stop - start
        picked = np.arange(start, stop) if size <= cap else start + np.sort(rng.choice(size, cap, replace=False))
        chosen.append(picked)
        owner.append(np.full(len(picked), number, dtype=np.int64))
    return np.concatenate(chosen), np.concatenate(owner)


def leading(first_rows: Sequence[int], rows: int, cap: int) -> list[int]:
    """Return the indices of the first `cap` rows of each request (all of a batch of small requests)."""
    kept: list[int] = []
    for start, stop in spans(first_rows, rows):
        kept.extend(range(start, min(stop, start + cap)))
    return kept
