"""The gateway's request id on each stored prediction, so a cluster can pair a stable's and a canary's answers.

In a cluster the shadow phase's copy comes from a Gateway API `RequestMirror`: Envoy sends it with the same
headers as the original, `x-request-id` included, and discards the canary's answer. So each service stores,
with every prediction it logs, the request's `x-request-id` (`trace`), the row's place in that request
(`row`), whether the request was a mirrored copy (`mirrored`) and the row's categorical values (`slices`,
for the per-slice churn). The live-quality exporter joins the two versions' rows on (trace, row)
(`serving/rollout/core/joined.py`). The prediction's own `request_id` (the one `/feedback` takes) is not
changed: the stable's and the canary's answers to one request stay two predictions, each labelled as its own.

The guard in front of `/predict` reads the headers into a context variable; the request model's validation
(same task) stores it on the request's first row (`per_request.RequestStart`), which carries it through the
batcher to the rows the recorder logs. A request without `x-request-id` (the local router's, a direct
call) stores nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from serving.model_service.per_request import Segment

REQUEST_ID_HEADER = b"x-request-id"
# An id longer than this is not a gateway's (Envoy's is a 36-character UUID): not stored.
MAX_TRACE_CHARS = 128
# Categorical values stored per row for the per-slice churn: at most this many features, values this long.
MAX_SLICE_FEATURES = 8
MAX_SLICE_CHARS = 64


class Trace(NamedTuple):
    """A request's gateway id and whether it is a mirrored copy."""

    request_id: str
    mirrored: bool


# The /predict request being validated in this task (set by the guard, read by the request model).
TRACE: ContextVar[Trace | None] = ContextVar("plinth_trace", default=None)


def trace_of(headers: dict[bytes, bytes], mirrored: bool) -> Trace | None:
    """Return the request's trace from its headers (None without a usable `x-request-id`)."""
    raw = headers.get(REQUEST_ID_HEADER, b"").decode("latin-1").strip()
    return Trace(raw, mirrored) if 0 < len(raw) <= MAX_TRACE_CHARS else None


def categorical(row: Any) -> list[str]:
    """Return the features of a row that hold a string or bool (at most MAX_SLICE_FEATURES)."""
    if not isinstance(row, dict):
        return []
    return [str(name) for name, value in row.items() if isinstance(value, str | bool)][:MAX_SLICE_FEATURES]


def slices_of(row: Any, features: Sequence[str]) -> dict[str, str | bool]:
    """Return a row's values of `features` that are strings (not too long) or bools: what churn is sliced by."""
    if not isinstance(row, dict):
        return {}
    found: dict[str, str | bool] = {}
    for feature in features:
        value = row.get(feature)
        if isinstance(value, bool) or (isinstance(value, str) and len(value) <= MAX_SLICE_CHARS):
            found[feature] = value
    return found


def traced_rows(instances: Sequence[Any], segments: Sequence[Segment]) -> list[dict[str, Any] | None]:
    """Return, per batch row, what its stored prediction carries of its request's trace (None: no trace)."""
    traced: list[dict[str, Any] | None] = [None] * len(instances)
    for segment in segments:
        if segment.trace is None:
            continue
        # The request's categorical features, from its first row here (a value missing there is not sliced in this
        # request): a numeric model's rows cost no per-value check.
        features = categorical(instances[segment.start]) if segment.stop > segment.start else []
        for index in range(segment.start, segment.stop):
            traced[index] = {
                "trace": segment.trace.request_id,
                "row": segment.offset + index - segment.start,
                "mirrored": segment.trace.mirrored,
                "slices": slices_of(instances[index], features),
            }
    return traced
