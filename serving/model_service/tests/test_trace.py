"""The gateway's request id stored with each row (`trace.py`), across the batcher's cuts."""

from pydantic import BaseModel

from serving.model_service import per_request
from serving.model_service.trace import TRACE, Trace, trace_of, traced_rows


class Request(BaseModel):
    instances: list[dict]


def test_a_traced_request_cut_by_the_batcher_keeps_its_id_rows_and_slices():
    requests = per_request.Requests(drift_cap=10)
    # A 5-row traced request cut after 3 rows: its rest comes first in the next batch, then an untraced request.
    batch_one = [{"plan": "monthly", "x": 1.0, "ok": True}] * 3
    batch_one[0] = per_request.RequestStart(batch_one[0], 5, Trace("req-1", mirrored=True))
    batch_two = [{"plan": "yearly", "x": 3.0, "ok": False}] * 2 + [
        per_request.RequestStart({"plan": "yearly", "x": 2.0}, 1)
    ]
    one = traced_rows(batch_one, requests.split(batch_one))
    two = traced_rows(batch_two, requests.split(batch_two))
    assert one[0] == {"trace": "req-1", "row": 0, "mirrored": True, "slices": {"plan": "monthly", "ok": True}}
    assert [row["row"] for row in one if row] == [0, 1, 2]
    assert [(row["trace"], row["row"], row["slices"]) for row in two[:2] if row] == [
        ("req-1", 3, {"plan": "yearly", "ok": False}),
        ("req-1", 4, {"plan": "yearly", "ok": False}),
    ]
    assert two[2] is None  # no x-request-id: nothing more stored


def test_the_header_becomes_the_trace_and_the_request_model_keeps_it():
    assert trace_of({b"x-request-id": b" 9f1c-aa "}, False) == Trace("9f1c-aa", False)
    assert trace_of({}, True) is None
    assert trace_of({b"x-request-id": b"x" * 129}, False) is None  # not a gateway's id: not stored
    token = TRACE.set(Trace("req-2", mirrored=False))
    try:
        parsed = per_request.marked(Request).model_validate({"instances": [{"a": "b"}, {"a": "c"}]})
    finally:
        TRACE.reset(token)
    start = parsed.instances[0]  # type: ignore[attr-defined]
    assert isinstance(start, per_request.RequestStart)
    assert (start.rows, start.trace) == (2, Trace("req-2", mirrored=False))
