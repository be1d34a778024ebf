"""Answer columns say what /predict answers for the same output, and request ids are the service's."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from components.score import answers as answer_columns_module
from components.score.answers import RequestIds, answer_columns
from serving.model_service.feedback import REQUEST_ID, parse_id
from serving.model_service.predictor import ServedTask
from serving.model_service.schema import answers

BINARY = ServedTask("binary", ("no", "yes"), True)
MULTICLASS = ServedTask("multiclass", (0, 1, 2), True)
REGRESSION = ServedTask("regression")


def as_rows(task: ServedTask, output: np.ndarray) -> list[dict]:
    columns = {name: array.to_pylist() for name, array in answer_columns(task, output).items()}
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def served(task: ServedTask, output: np.ndarray) -> list[dict]:
    return [
        {key: value for key, value in answer.items() if key not in ("model_name", "model_version")}
        for answer in answers(task, output, "m", "1")
    ]


def test_binary_labels_follow_the_services_rule_at_the_boundary_too():
    positive = np.array([0.0, 0.49999, 0.5, 0.50001, 1.0])
    output = np.column_stack([1 - positive, positive])
    assert as_rows(BINARY, output) == served(BINARY, output)
    assert [row["label"] for row in as_rows(BINARY, output)] == ["no", "no", "yes", "yes", "yes"]


def test_multiclass_and_regression_answers_are_the_services():
    output = np.random.default_rng(0).dirichlet(np.ones(3), size=50)
    assert as_rows(MULTICLASS, output) == served(MULTICLASS, output)
    assert {type(row["label"]) for row in as_rows(MULTICLASS, output)} == {int}  # labels keep their type
    values = np.array([1.5, -2.0, 3e6])
    assert as_rows(REGRESSION, values) == served(REGRESSION, values)


def test_request_ids_are_the_services_format_with_the_scoring_time():
    ids = RequestIds("7").draw(10_000, 1_765_000_000_123).to_pylist()
    assert len(set(ids)) == len(ids)
    assert all(REQUEST_ID.fullmatch(request_id) for request_id in ids)
    assert {parse_id(request_id) for request_id in ids} == {("7", 1_765_000_000_123)}
    assert {request_id[2 + 12] for request_id in ids} == {"7"}  # UUID version 7


def test_request_ids_spell_their_octets_as_bytes_hex_does():
    """Each id's 32 digits are its 16 drawn octets (time, version and variant stamped) in lower-case hex."""
    ids = RequestIds("12")
    ids.random = np.random.default_rng(3)
    drawn = ids.draw(2_000, 1_765_000_000_123).to_pylist()
    octets = np.frombuffer(np.random.default_rng(3).bytes(2_000 * 16), dtype=np.uint8).reshape(2_000, 16)
    spelled = [row.tobytes().hex() for row in octets]
    assert len({digit for row in spelled for digit in row}) == 16  # every hex digit drawn, so every pair checked
    for request_id, expected in zip(drawn, spelled, strict=True):
        digits = request_id.removeprefix("12.")
        assert digits[12:] == "7" + expected[13:16] + digits[16] + expected[17:]  # the random digits, as drawn
        assert digits[16] in "89ab"  # the RFC 9562 variant


def test_request_ids_past_a_string_columns_offsets_are_the_same_column(monkeypatch):
    """A chunk whose ids outgrow 32-bit offsets is built with 64-bit ones, then given the same `string` type."""
    monkeypatch.setattr(answer_columns_module, "MAX_STRING_BYTES", 100)
    ids = RequestIds("7").draw(10, 1_765_000_000_123)
    assert ids.type == pa.string()
    assert all(REQUEST_ID.fullmatch(request_id) for request_id in ids.to_pylist())
    assert len(set(ids.to_pylist())) == 10
