"""The predict side of ground-truth feedback: give every prediction a request id and log it.

Logging must never cost an answer: a batch that cannot be written (disk full, I/O error, a lock held past
its timeout) is still answered, with its ids, and the failure is counted in
`plinth_prediction_log_errors_total` and logged at WARNING at most once a minute per worker (with how many
failures that line stands for), so it is never silent and never floods the log.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from typing import Any

from serving.model_service.feedback import PredictionLog, new_id, replica_of
from serving.model_service.monitor import (
    FEEDBACK,
    FEEDBACK_RESULTS,
    PREDICTION_LOG_ERRORS,
    PREDICTION_LOG_EVICTED,
    PREDICTION_LOG_ROWS,
)
from serving.model_service.predictor import ServedTask

logger = logging.getLogger("plinth.model_service.feedback")
WARN_EVERY_S = 60.0
# What a later label is scored against: the answered label and probabilities, or the predicted value.
LOGGED_KEYS = ("label", "probabilities", "prediction")


class Recorder:
    """Stamps answers with request ids and writes them to the served version's log (when feedback is on)."""

    def __init__(
        self, log: PredictionLog | None, model_name: str, model_version: str, task: ServedTask, pod_ip: str = ""
    ) -> None:
        self.log = log
        self.version = model_version
        self.task = task
        self.replica = replica_of(pod_ip=pod_ip)
        self.labels = (model_name, model_version)
        self._warned_at = -WARN_EVERY_S
        self._unreported = 0

    def start(self) -> None:
        """Open the version's log and create its metric series at zero (in the worker, once)."""
        for result in FEEDBACK_RESULTS:
            FEEDBACK.labels(*self.labels, result)
        for reason in ("rows", "age"):
            PREDICTION_LOG_EVICTED.labels(*self.labels, reason)
        PREDICTION_LOG_ERRORS.labels(*self.labels)
        if self.log is None:
            return
        try:
            PREDICTION_LOG_ROWS.labels(*self.labels).set(self.log.open(self.version, self.task))
        except (sqlite3.Error, OSError) as error:
            self._failed(error)

    def stamp(self, answers: list[dict[str, Any]]) -> None:
        """Give each answer its `request_id` and log the batch in one write."""
        now_ms = int(time.time() * 1000)
        rows = []
        for answer in answers:
            request_id = new_id(self.version, self.replica, now_ms)
            rows.append((request_id, now_ms, json.dumps({key: answer[key] for key in LOGGED_KEYS if key in answer})))
            answer["request_id"] = request_id
        if self.log is None:
            return
        try:
            written = self.log.write(self.version, rows)
        except (sqlite3.Error, OSError) as error:
            self._failed(error)
            return
        if written.evicted:
            PREDICTION_LOG_EVICTED.labels(*self.labels, "rows").inc(written.evicted)
        if written.expired:
            PREDICTION_LOG_EVICTED.labels(*self.labels, "age").inc(written.expired)
        PREDICTION_LOG_ROWS.labels(*self.labels).set(written.rows)

    def _failed(self, error: Exception) -> None:
        """Count a failed write; log it at most once per WARN_EVERY_S, with the failures since the last line."""
        PREDICTION_LOG_ERRORS.labels(*self.labels).inc()
        self._unreported += 1
        now = time.monotonic()
        if now - self._warned_at < WARN_EVERY_S:
            return
        logger.warning(
            "prediction log %s: %s (%d write(s) failed since the last warning; predictions are still answered)",
            self.log.path(self.version) if self.log else "-",
            error,
            self._unreported,
        )
        self._warned_at, self._unreported = now, 0
