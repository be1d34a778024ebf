"""The pre-traffic check against a real HTTP service: same answers pass, anything else is one clear refusal."""

from __future__ import annotations

import pandas as pd
import pytest

from serving.embedded.processes import free_port
from serving.rollout.edges.inspect_model import InputColumn, ModelFacts
from serving.rollout.edges.pre_traffic import ReferenceRows, check_canary, reference_rows
from serving.rollout.tests.http_backend import Backend

ROWS = [{"x": 1.0}, {"x": 2.0}]
STORED = ((0.9, 0.1), (0.2, 0.8))


def binary(rows: tuple[tuple[float, float], ...]) -> list[dict]:
    return [
        {"label": "1" if p1 >= 0.5 else "0", "probability": p1, "probabilities": {"0": p0, "1": p1}} for p0, p1 in rows
    ]


def refusal(body: object, status: int = 200, expected: tuple | None = STORED) -> str | None:
    canary = Backend("canary", status=status, body=body)
    try:
        return check_canary(canary.url, ReferenceRows(ROWS, expected))
    finally:
        canary.close()


def test_the_same_answers_within_float_noise_pass() -> None:
    noisy = tuple((p0 + 1e-9, p1 - 1e-9) for p0, p1 in STORED)
    assert refusal(binary(noisy)) is None


def test_other_predictions_are_refused_naming_the_row() -> None:
    reason = refusal(binary(((0.9, 0.1), (0.7, 0.3))))
    assert reason is not None
    assert reason.startswith("canary's answers differ from its registration: reference row 1 answered [0.7, 0.3]")
    assert "registered [0.2, 0.8]" in reason


def test_answers_wrapped_in_an_object_are_read() -> None:
    assert refusal({"model_version": "2", "predictions": binary(STORED)}) is None


def test_a_regression_value_is_compared() -> None:
    assert refusal([{"prediction": 3.5}, {"prediction": 7.0}], expected=((3.5,), (7.0,))) is None
    assert "reference row 0" in (refusal([{"prediction": 4.0}, {"prediction": 7.0}], expected=((3.5,), (7.0,))) or "")


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        ({"error": "boom"}, 500, "canary answered its reference rows with HTTP 500"),
        (binary(STORED)[:1], 200, "expected 2 answers"),
        ([{"label": "1"}, {"label": "0"}], 200, "reference row 0: an answer without probabilities"),
    ],
)
def test_errors_and_malformed_answers_are_refused(body: object, status: int, expected: str) -> None:
    reason = refusal(body, status)
    assert reason is not None
    assert expected in reason
    assert "\n" not in reason


def test_an_unreachable_canary_is_refused() -> None:
    reason = check_canary(f"http://127.0.0.1:{free_port()}", ReferenceRows(ROWS, STORED))
    assert reason is not None
    assert "did not answer its reference rows (ConnectError" in reason


def test_without_stored_predictions_answering_is_all_that_is_checked() -> None:
    assert refusal(binary(((0.5, 0.5), (0.5, 0.5))), expected=None) is None


def test_reference_rows_are_typed_by_the_signature_and_paired_with_the_stored_outputs() -> None:
    facts = ModelFacts(
        "m",
        "1",
        inputs=(InputColumn("n", "long"), InputColumn("x", "double")),
        example=pd.DataFrame({"n": [1.0, 2.0], "x": [0.5, None], "extra": [1, 2]}),
        reference_predictions=STORED,
    )
    reference = reference_rows(facts)
    assert reference.rows == [{"n": 1, "x": 0.5}, {"n": 2, "x": None}]
    assert reference.expected == STORED
    # Outputs that do not pair with the rows are not compared rather than compared wrongly.
    assert (
        reference_rows(ModelFacts("m", "1", example=facts.example, reference_predictions=STORED[:1])).expected is None
    )
