"""A registry URI with credentials in it never reaches the controller's log lines, even through an error's text.

MLflow repeats the URI it failed on (`API request to http://user:secret@mlflow/... failed`): the reconcile loop's
"reconcile failed" line and its log record (with the traceback) go through `components/common/redact.py`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from serving.rollout.core.reconcile import Desired, Reconciler
from serving.rollout.core.spec import load_spec

SECRET_URI = "http://ci:s3cret@mlflow.example:5000/api/2.0/mlflow/registered-models/alias?token=t0ken"


class Unreachable:
    """A cluster view whose first read fails the way an MLflow client call does."""

    def read_desired(self) -> Desired:
        raise ConnectionError(f"API request to {SECRET_URI} failed with exception timeout")


def test_a_failed_tick_says_why_without_the_registry_password(caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()
    lines: list[str] = []

    def said(line: str) -> None:
        lines.append(line)
        if "reconcile failed" in line:
            stop.set()

    reconciler = Reconciler(
        load_spec(Path(__file__).parents[1] / "analysis-fast.yaml"),
        Unreachable(),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        "m",
        "staging",
        stop=stop,
        on_line=said,
    )
    with caplog.at_level(logging.ERROR, "plinth.rollout"):
        reconciler.run()
    [failed] = [line for line in lines if "reconcile failed" in line]
    assert "http://***@mlflow.example:5000/api/2.0/mlflow/registered-models/alias?***" in failed
    assert "ConnectionError" in caplog.text  # the traceback is still logged, redacted
    for text in (failed, caplog.text):
        assert "s3cret" not in text
        assert "t0ken" not in text
