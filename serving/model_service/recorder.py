"""The predict side of ground-truth feedback: a request id per prediction, written to the store in batches.

The predict path only stamps ids and appends to a bounded in-memory queue (one per worker process); a
background thread writes what is queued in one transaction every FLUSH_S or as soon as FLUSH_ROWS are
waiting, and every PURGE_EVERY_S deletes one batch of predictions older than the age bound. Logging must
never cost an answer: while the store is down, rows stay queued (a failed batch goes back to the front) up
to `max_pending`; past it the oldest are dropped and counted in
`plinth_prediction_store_dropped_total{reason="buffer_full"}`. A failure is logged at WARNING at most once a
minute per worker, with how many failures that line stands for. When the store answers again the queue
drains. A worker that stops gracefully writes its queue first (one try, at exit).

With a payload archive (`archive.py`), `stamp` also hands it a reference to the batch's inputs and answers:
one append to its own bounded queue, converted and written as Parquet by its own thread.

No single request fills the queue: every prediction gets its id, but only the first `rows_per_request` of a
request (`PLINTH_LOG_ROWS_PER_REQUEST`, default 100) are queued for the store; the rest are answered, never
stored, and counted in `plinth_prediction_store_dropped_total{reason="request_cap"}` (their labels answer 404).
Without the cap, 100 requests of 1,000 rows sent while the store is slow or down would push every earlier
prediction out of the 50,000-row queue, and with them the labels they were waiting for.
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
from typing import Any

from sqlalchemy.exc import IntegrityError

from serving.model_service.archive import PayloadArchive
from serving.model_service.feedback import new_id
from serving.model_service.monitor import (
    FEEDBACK,
    FEEDBACK_RESULTS,
    STORE_DROP_REASONS,
    STORE_DROPPED,
    STORE_ERRORS,
    STORE_OPERATIONS,
    STORE_PENDING,
    STORE_PURGED,
    STORE_WRITTEN,
)
from serving.model_service.predictor import ServedTask
from serving.model_service.store import Prediction, PredictionStore, StoreError
from serving.model_service.throttle import ThrottledFailures

logger = logging.getLogger("plinth.model_service.feedback")
# What a later label is scored against: the answered label and probabilities, or the predicted value.
LOGGED_KEYS = ("label", "probabilities", "prediction")
# The writer thread flushes this often, or at once when this many rows wait; one transaction per flush.
FLUSH_S = 0.2
FLUSH_ROWS = 500
# One worker's writer purges one batch of too-old predictions this often.
PURGE_EVERY_S = 60.0
# After a failed flush the writer waits this long, doubling up to RETRY_MAX_S, before trying again.
RETRY_S = 0.5
RETRY_MAX_S = 5.0


class Recorder:
    """Stamps answers with request ids and queues them for the store (when feedback is on)."""

    def __init__(
        self,
        store: PredictionStore | None,
        model_name: str,
        model_version: str,
        task: ServedTask,
        max_pending: int = 50_000,
        archive: PayloadArchive | None = None,
    ) -> None:
        self.store = store
        self.archive = archive
        self.model_name = model_name
        self.version = model_version
        self.task = task
        self.max_pending = max_pending
        self.labels = (model_name, model_version)
        self._pending: collections.deque[Prediction] = collections.deque()
        self._wake = threading.Condition()
        self._writing = threading.Lock()  # one flush at a time: the thread's, or a caller's `flush()`
        self._closed = False
        self._registered = False
        self._thread: threading.Thread | None = None
        self._failures = ThrottledFailures()
        self._purged_at = time.monotonic()

    def start(self) -> None:
        """Create the metric series at zero and start the writer thread (in the worker, once)."""
        for result in FEEDBACK_RESULTS:
            FEEDBACK.labels(*self.labels, result)
        for reason in STORE_DROP_REASONS:
            STORE_DROPPED.labels(*self.labels, reason)
        for operation in STORE_OPERATIONS:
            STORE_ERRORS.labels(*self.labels, operation)
        STORE_WRITTEN.labels(*self.labels)
        STORE_PURGED.labels(*self.labels)
        STORE_PENDING.labels(*self.labels).set(0)
        if self.archive is not None:
            self.archive.start()
        if self.store is None:
            return
        self._thread = threading.Thread(target=self._run, name="plinth-prediction-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)  # a worker stopped gracefully (SIGTERM) writes what it still holds

    def stamp(
        self,
        answers: list[dict[str, Any]],
        inputs: Any = None,
        logged: list[int] | None = None,
        traces: list[dict[str, Any] | None] | None = None,
    ) -> None:
        """Give each answer its `request_id` and queue the batch for the store (never blocks on it).

        `inputs` (the served batch) goes, with the answers, to the payload archive when there is one.
        `logged` (default: all) are the answers that go to the store: each request's first rows
        (`per_request.log_rows`); the others are counted as `request_cap`. `traces` (per answer, None: none)
        is stored beside a logged answer: its request's gateway id and row (`trace.py`), for shadow pairing.
        """
        now_ms = int(time.time() * 1000) if self.store is None else self.store.now_ms()
        for answer in answers:
            answer["request_id"] = new_id(self.version, now_ms)
        if self.archive is not None and inputs is not None:
            self.archive.predictions(self.model_name, self.version, now_ms, inputs, answers)
        if self.store is None:
            return
        kept = range(len(answers)) if logged is None else logged
        if len(kept) < len(answers):
            STORE_DROPPED.labels(*self.labels, "request_cap").inc(len(answers) - len(kept))
        rows = []
        for index in kept:
            answer = answers[index]
            scored = {key: answer[key] for key in LOGGED_KEYS if key in answer}
            traced = traces[index] if traces is not None else None
            if traced is not None:
                scored.update(traced)
            rows.append(Prediction(answer["request_id"], self.model_name, self.version, now_ms, scored))
        with self._wake:
            self._pending.extend(rows)
            over = len(self._pending) - self.max_pending
            if over > 0:  # the store has been down for a while: the oldest rows go, counted
                for _ in range(over):
                    self._pending.popleft()
                STORE_DROPPED.labels(*self.labels, "buffer_full").inc(over)
            if len(self._pending) >= FLUSH_ROWS:
                self._wake.notify()

    def pending(self) -> int:
        """Return the rows queued in this process and not yet written."""
        return len(self._pending)

    def flush(self) -> bool:
        """Write everything queued now, in this thread; return whether the store took it (or nothing was queued)."""
        if self.store is None:
            return True
        with self._writing:
            if not self._registered:
                self.store.register(self.model_name, self.version, self.task)
                self._registered = True
            while True:
                with self._wake:
                    batch = [self._pending.popleft() for _ in range(min(len(self._pending), FLUSH_ROWS * 10))]
                if not batch:
                    break
                try:
                    self._write(batch)
                except StoreError:
                    with self._wake:  # back to the front, in order, within the bound
                        room = max(0, self.max_pending - len(self._pending))
                        kept = batch[len(batch) - room :] if room < len(batch) else batch
                        self._pending.extendleft(reversed(kept))
                        if len(kept) < len(batch):
                            STORE_DROPPED.labels(*self.labels, "buffer_full").inc(len(batch) - len(kept))
                    raise
            STORE_PENDING.labels(*self.labels).set(len(self._pending))
        return True

    def _write(self, batch: list[Prediction]) -> None:
        """Write one batch; a row the store refuses (an id already there) is dropped, the rest written."""
        assert self.store is not None
        try:
            self.store.write(batch)
        except IntegrityError:
            for row in batch:
                try:
                    self.store.write([row])
                except IntegrityError:
                    STORE_DROPPED.labels(*self.labels, "rejected").inc()
        STORE_WRITTEN.labels(*self.labels).inc(len(batch))

    def _run(self) -> None:
        """The writer thread: flush on time or size, purge now and then, back off while the store is down."""
        retry = RETRY_S
        while not self._closed:
            with self._wake:
                if len(self._pending) < FLUSH_ROWS and not self._closed:
                    self._wake.wait(FLUSH_S)
            try:
                self.flush()
                self._purge()
                retry = RETRY_S
            except StoreError as error:
                self.failed("write", error)
                STORE_PENDING.labels(*self.labels).set(len(self._pending))
                with self._wake:
                    if not self._closed:
                        self._wake.wait(retry)
                retry = min(retry * 2, RETRY_MAX_S)

    def _purge(self) -> None:
        """Delete one batch of predictions past the age bound, at most once per PURGE_EVERY_S."""
        assert self.store is not None
        if time.monotonic() - self._purged_at < PURGE_EVERY_S:
            return
        self._purged_at = time.monotonic()
        purged = self.store.purge()
        if purged:
            STORE_PURGED.labels(*self.labels).inc(purged)

    def failed(self, operation: str, error: Exception) -> None:
        """Count a failed store operation; log it at most once a minute, with the failures since the last."""
        STORE_ERRORS.labels(*self.labels, operation).inc()
        count = self._failures.failed()
        if count is None:
            return
        logger.warning(
            "%s (%d store operation(s) failed since the last warning; %d prediction(s) queued; "
            "predictions are still answered)",
            error,
            count,
            len(self._pending),
        )

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the writer thread after one last flush attempt (and the archive's)."""
        if self.archive is not None:
            self.archive.close()
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)
        try:
            self.flush()
        except StoreError as error:
            self.failed("write", error)
