"""The pre-traffic check: before any request reaches it, the canary must answer its own reference rows.

At training time plinth stores the model's outputs for its input example rows in the MLmodel metadata
(`reference_predictions`, signed with the rest of the model directory). Both rollout paths post those rows
to the canary's service before the shadow phase and refuse it, with one reason, unless it answers every
row with what the model answered at registration (within float noise). A canary that is not running, a
broken image, a wrong artifact or a mis-wired schema is therefore stopped before any user request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from serving.rollout.edges.inspect_model import ModelFacts
from serving.rollout.edges.sample_rows import Row, records

CHECK_TIMEOUT_S = 10.0
# Serialisation and BLAS differences between the training process and the service, not a model change.
REL_TOLERANCE, ABS_TOLERANCE = 1e-5, 1e-6


@dataclass(frozen=True)
class ReferenceRows:
    """The rows a canary must answer before traffic, and what the model answered at registration (if stored)."""

    rows: list[Row]
    expected: tuple[tuple[float, ...], ...] | None = None


def reference_rows(facts: ModelFacts) -> ReferenceRows:
    """Return the version's input example rows (typed as its signature says) and their stored outputs."""
    rows = records(facts.example, facts.inputs) if facts.example is not None else []
    expected = facts.reference_predictions if rows and len(facts.reference_predictions or ()) == len(rows) else None
    return ReferenceRows(rows, expected)


def answer_values(answer: Any) -> tuple[float, ...]:
    """Return the numbers of one answer, in the shape `predict_output` stored them (probabilities or a value).

    Raises:
        ValueError: the answer carries neither class probabilities nor a predicted value.
    """
    if isinstance(answer, dict) and isinstance(answer.get("probabilities"), dict):
        return tuple(float(value) for value in answer["probabilities"].values())
    if isinstance(answer, dict) and isinstance(answer.get("prediction"), int | float):
        return (float(answer["prediction"]),)
    raise ValueError(f"an answer without probabilities or a predicted value: {str(answer)[:120]}")


def same(got: Sequence[float], want: Sequence[float]) -> bool:
    """Return whether two outputs agree within float noise."""
    return len(got) == len(want) and all(
        math.isclose(a, b, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE) for a, b in zip(got, want, strict=True)
    )


def compare(answers: Any, reference: ReferenceRows) -> str | None:
    """Return how the canary's answers differ from the stored outputs, None when they agree.

    The service answers a list of predictions, or an object that carries them under `predictions`.
    """
    if isinstance(answers, dict) and "predictions" in answers:
        answers = answers["predictions"]
    if not isinstance(answers, list) or len(answers) != len(reference.rows):
        return f"expected {len(reference.rows)} answers to its reference rows, got {str(answers)[:120]}"
    if reference.expected is None:
        return None  # nothing stored to compare with: answering the rows is all it can prove
    for index, (answer, want) in enumerate(zip(answers, reference.expected, strict=True)):
        try:
            got = answer_values(answer)
        except ValueError as error:
            return f"reference row {index}: {error}"
        if not same(got, want):
            shown = ", ".join(f"{value:.6g}" for value in got)
            stored = ", ".join(f"{value:.6g}" for value in want)
            return f"reference row {index} answered [{shown}], registered [{stored}]: not the model that was evaluated"
    return None


def check_canary(url: str, reference: ReferenceRows, timeout: float = CHECK_TIMEOUT_S) -> str | None:
    """Post the reference rows to the canary at `url`; return why it is refused, None when it passed.

    A model without stored rows can only be asked whether it is ready (`/readyz`).
    """
    base = url.rstrip("/")
    try:
        with httpx.Client(timeout=timeout) as client:
            if not reference.rows:
                ready = client.get(f"{base}/readyz")
                return None if ready.status_code == 200 else f"canary at {base} not ready (HTTP {ready.status_code})"
            response = client.post(f"{base}/predict", json={"instances": reference.rows})
    except httpx.HTTPError as error:
        return f"canary at {base} did not answer its reference rows ({type(error).__name__}: {error})"
    if response.status_code != 200:
        body = " ".join(response.text.split())[:160]
        return f"canary answered its reference rows with HTTP {response.status_code}: {body}"
    try:
        answers = response.json()
    except ValueError:
        return "canary answered its reference rows with a body that is not JSON"
    differs = compare(answers, reference)
    return None if differs is None else f"canary's answers differ from its registration: {differs}"
