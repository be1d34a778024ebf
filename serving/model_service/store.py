"""The prediction store: every replica's and version's predictions and their late labels, in one database.

One setting names it, `PLINTH_PREDICTION_STORE`: a `postgresql://` URL (the cluster: every pod of every
track writes to it, any pod accepts any label, and it outlives them all) or an SQLite file (one machine:
WAL mode, shared by the worker processes and by a stable and a canary there). One schema, SQLAlchemy Core,
serves both engines:

- `plinth_predictions`: request_id (primary key), model name, version, created_at (Unix ms), the answer as
  JSON (label and probabilities, or the value); indexed by created_at for the purge.
- `plinth_labels`: an increasing id (what the live-quality exporter reads from), request_id (unique: a
  second label is a duplicate, 409), the truth as JSON, labelled_at, and what the label scored (right or
  wrong, log loss, absolute error), with the prediction's model, version and time copied in so that the
  live-quality windows are one indexed aggregate, no join.
- `plinth_versions`: the task each (model, version) answers, so a label is checked against its own.
- `plinth_outcomes`: a business value per prediction (`outcome` in /feedback: revenue, a click), with the
  prediction's model, version and time copied in; what A/B experiments (`serving/experiments`) are judged on.

Every time comes from `clock` (default `time.time`): tests move it to label a prediction days later.
Connections are opened lazily in the process that uses them (BentoML's workers are forked processes).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError

from serving.model_service.feedback import task_from_json, task_to_json
from serving.model_service.predictor import ServedTask

# Waiting this long for a connection (PostgreSQL) or another worker's write lock (SQLite) before failing.
CONNECT_TIMEOUT_S = 3
STATEMENT_TIMEOUT_MS = 5000
SCHEMA_ATTEMPTS = 5  # creators racing for the schema: each retry finds more of the other's tables made
# Predictions (and their labels) older than the age bound are deleted at most this many per statement.
PURGE_BATCH = 5000

metadata = sa.MetaData()
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite's rowid alias must be INTEGER
PREDICTIONS = sa.Table(
    "plinth_predictions",
    metadata,
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False, index=True),
    sa.Column("prediction", sa.Text, nullable=False),
)
LABELS = sa.Table(
    "plinth_labels",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(128), nullable=False, unique=True),
    sa.Column("truth", sa.Text, nullable=False),
    sa.Column("labelled_at", sa.BigInteger, nullable=False, index=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("predicted_at", sa.BigInteger, nullable=False, index=True),
    sa.Column("correct", sa.Float),
    sa.Column("log_loss", sa.Float),
    sa.Column("abs_error", sa.Float),
)
VERSIONS = sa.Table(
    "plinth_versions",
    metadata,
    sa.Column("model_name", sa.String(255), primary_key=True),
    sa.Column("model_version", sa.String(64), primary_key=True),
    sa.Column("task", sa.Text, nullable=False),
)
OUTCOMES = sa.Table(
    "plinth_outcomes",
    metadata,
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("predicted_at", sa.BigInteger, nullable=False, index=True),
    sa.Column("recorded_at", sa.BigInteger, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
)
# Column of the labels table that each live-quality window is counted by.
BY_COLUMNS = {"label_time": LABELS.c.labelled_at, "prediction_time": LABELS.c.predicted_at}


class StoreError(Exception):
    """The store cannot be reached or refused a statement; the message says which store and why."""


@dataclass(frozen=True)
class Prediction:
    """One answered prediction as written: its id, model, version, time (Unix ms) and answer."""

    request_id: str
    model_name: str
    model_version: str
    created_at: int
    answer: dict[str, Any]


@dataclass(frozen=True)
class Found:
    """A stored prediction looked up for its label: what it answered, for which task, and if it has a label."""

    model_name: str
    model_version: str
    created_at: int
    answer: dict[str, Any]
    task: ServedTask | None
    labelled: bool


@dataclass(frozen=True)
class Scores:
    """What one label says of its prediction: right (1) or wrong (0), log loss, absolute error (None: n/a)."""

    correct: float | None = None
    log_loss: float | None = None
    abs_error: float | None = None

    @property
    def squared_error(self) -> float | None:
        """Return the squared error (None: n/a): its sum gives the variance the rollout's MAE comparison needs."""
        return None if self.abs_error is None else self.abs_error * self.abs_error


@dataclass(frozen=True)
class Labelled:
    """One label as the live-quality exporter reads it."""

    id: int
    model_name: str
    model_version: str
    scores: Scores


@dataclass(frozen=True)
class Window:
    """Labels of one version in one window: rows, and per score its sum and how many rows have it."""

    model_name: str
    model_version: str
    rows: int
    correct: tuple[float, int]
    log_loss: tuple[float, int]
    abs_error: tuple[float, int]


def store_url(setting: str) -> str:
    """Return the SQLAlchemy URL of a store setting: an SQLite path or URL, or a postgresql:// URL."""
    if setting.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + setting.split("://", 1)[1]
    if setting.startswith(("postgresql+", "sqlite:")):
        return setting
    return f"sqlite:///{Path(setting).expanduser().resolve()}"


def shown(url: str) -> str:
    """Return the store's URL without its password, for messages and logs."""
    return sa.make_url(url).render_as_string(hide_password=True)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={CONNECT_TIMEOUT_S * 1000}")
    cursor.close()


class PredictionStore:
    """One process's handle on the store (engines are per process: a forked worker opens its own)."""

    def __init__(self, setting: str, max_age_s: float, clock: Callable[[], float] = time.time) -> None:
        self.url = store_url(setting)
        self.max_age_ms = int(max_age_s * 1000)
        self.clock = clock
        self._lock = threading.Lock()
        self._pid = 0
        self._engine: Engine | None = None
        self._created = False

    def __str__(self) -> str:
        return shown(self.url)

    def now_ms(self) -> int:
        """Return the store's clock in Unix milliseconds."""
        return int(self.clock() * 1000)

    @property
    def engine(self) -> Engine:
        """Return this process's engine, created on first use (and anew in a forked child)."""
        with self._lock:
            if self._engine is None or self._pid != os.getpid():
                self._pid, self._created = os.getpid(), False
                self._engine = self._new_engine()
            return self._engine

    def _new_engine(self) -> Engine:
        if self.url.startswith("sqlite"):
            path = sa.make_url(self.url).database
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(self.url, connect_args={"timeout": CONNECT_TIMEOUT_S})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        options = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
        return sa.create_engine(
            self.url,
            pool_size=2,
            max_overflow=4,
            pool_pre_ping=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "options": options},
        )

    def _ready(self) -> Engine:
        """Return the engine with the schema created (once per process; racing creators are fine).

        `create_all` checks, then creates: replicas (or a service's workers) starting together can each see a table
        missing and the later one's CREATE fails. PostgreSQL says so with a unique violation on its catalogue
        (IntegrityError) or "relation … already exists", SQLite with "table … already exists"; the check is then
        run again, which finds the other creator's tables and creates whatever it has not created yet.
        """
        engine = self.engine
        if not self._created:
            for attempt in range(SCHEMA_ATTEMPTS):
                try:
                    metadata.create_all(engine, checkfirst=True)
                    break
                except (IntegrityError, OperationalError, ProgrammingError) as error:
                    raced = isinstance(error, IntegrityError) or "already exists" in str(error.orig)
                    if not raced or attempt == SCHEMA_ATTEMPTS - 1:
                        raise
            self._created = True
        return engine

    def _run(self, work: Callable[[sa.Connection], Any]) -> Any:
        """Run `work` in one transaction; every database failure becomes a StoreError (IntegrityError passes)."""
        try:
            with self._ready().begin() as connection:
                return work(connection)
        except IntegrityError:
            raise
        except SQLAlchemyError as error:
            cause = getattr(error, "orig", None) or error
            raise StoreError(f"prediction store {self}: {type(cause).__name__}: {str(cause).strip()}") from error

    def register(self, model_name: str, version: str, task: ServedTask) -> None:
        """Record the task `version` answers (once; a version's task never changes)."""

        def work(connection: sa.Connection) -> None:
            known = connection.execute(
                sa.select(VERSIONS.c.task).where(
                    VERSIONS.c.model_name == model_name, VERSIONS.c.model_version == version
                )
            ).first()
            if known is None:
                connection.execute(
                    VERSIONS.insert().values(model_name=model_name, model_version=version, task=task_to_json(task))
                )

        with contextlib.suppress(IntegrityError):  # registered by another process in between
            self._run(work)

    def write(self, rows: Sequence[Prediction]) -> None:
        """Insert predictions in one transaction (IntegrityError if an id is already there: none is written)."""
        if not rows:
            return
        values = [
            {
                "request_id": row.request_id,
                "model_name": row.model_name,
                "model_version": row.model_version,
                "created_at": row.created_at,
                "prediction": json.dumps(row.answer),
            }
            for row in rows
        ]
        self._run(lambda connection: connection.execute(PREDICTIONS.insert(), values))

    def purge(self, batch: int = PURGE_BATCH) -> int:
        """Delete one batch of the predictions (and their labels) older than the age bound; return how many."""
        cutoff = self.now_ms() - self.max_age_ms

        def work(connection: sa.Connection) -> int:
            old = (
                sa.select(PREDICTIONS.c.request_id)
                .where(PREDICTIONS.c.created_at < cutoff)
                .order_by(PREDICTIONS.c.created_at)
                .limit(batch)
                .scalar_subquery()
            )
            connection.execute(LABELS.delete().where(LABELS.c.predicted_at < cutoff))
            return int(connection.execute(PREDICTIONS.delete().where(PREDICTIONS.c.request_id.in_(old))).rowcount)

        return int(self._run(work))

    def find(self, request_id: str) -> Found | None:
        """Return the stored prediction of `request_id` with its version's task and whether it has a label."""
        query = (
            sa.select(
                PREDICTIONS.c.model_name,
                PREDICTIONS.c.model_version,
                PREDICTIONS.c.created_at,
                PREDICTIONS.c.prediction,
                VERSIONS.c.task,
                LABELS.c.id,
            )
            .select_from(
                PREDICTIONS.outerjoin(
                    VERSIONS,
                    sa.and_(
                        VERSIONS.c.model_name == PREDICTIONS.c.model_name,
                        VERSIONS.c.model_version == PREDICTIONS.c.model_version,
                    ),
                ).outerjoin(LABELS, LABELS.c.request_id == PREDICTIONS.c.request_id)
            )
            .where(PREDICTIONS.c.request_id == request_id)
        )
        row = self._run(lambda connection: connection.execute(query).first())
        if row is None:
            return None
        task = None if row.task is None else task_from_json(row.task)
        return Found(
            row.model_name, row.model_version, row.created_at, json.loads(row.prediction), task, row.id is not None
        )

    def label(self, request_id: str, found: Found, truth: str | float, scores: Scores) -> bool:
        """Store the label of `request_id`; False when it already has one (a duplicate: the first label wins)."""
        values = {
            "request_id": request_id,
            "truth": json.dumps(truth),
            "labelled_at": self.now_ms(),
            "model_name": found.model_name,
            "model_version": found.model_version,
            "predicted_at": found.created_at,
            "correct": scores.correct,
            "log_loss": scores.log_loss,
            "abs_error": scores.abs_error,
        }
        try:
            self._run(lambda connection: connection.execute(LABELS.insert().values(**values)))
        except IntegrityError:
            return False
        return True

    def outcome(self, request_id: str, found: Found, value: float) -> bool:
        """Store the business outcome of `request_id`; False when it already has one (the first one wins)."""
        values = {
            "request_id": request_id,
            "model_name": found.model_name,
            "model_version": found.model_version,
            "predicted_at": found.created_at,
            "recorded_at": self.now_ms(),
            "value": value,
        }
        try:
            self._run(lambda connection: connection.execute(OUTCOMES.insert().values(**values)))
        except IntegrityError:
            return False
        return True

    def read(self, query: sa.Select[Any]) -> list[Any]:
        """Return the rows of a read-only query on the store's tables (an experiment's per-version sums)."""
        return list(self._run(lambda connection: connection.execute(query).all()))

    def versions(self) -> dict[tuple[str, str], ServedTask]:
        """Return the task of every (model, version) that has written predictions here."""
        query = sa.select(VERSIONS.c.model_name, VERSIONS.c.model_version, VERSIONS.c.task)
        rows = self._run(lambda connection: connection.execute(query).all())
        return {(row.model_name, row.model_version): task_from_json(row.task) for row in rows}

    def labels_after(self, low_id: int, limit: int = 50_000) -> list[Labelled]:
        """Return labels with an id above `low_id`, in id order (the exporter's running totals)."""
        query = (
            sa.select(
                LABELS.c.id,
                LABELS.c.model_name,
                LABELS.c.model_version,
                LABELS.c.correct,
                LABELS.c.log_loss,
                LABELS.c.abs_error,
            )
            .where(LABELS.c.id > low_id)
            .order_by(LABELS.c.id)
            .limit(limit)
        )
        rows = self._run(lambda connection: connection.execute(query).all())
        return [Labelled(r.id, r.model_name, r.model_version, Scores(r.correct, r.log_loss, r.abs_error)) for r in rows]

    def windows(self, since_ms: int, by: str) -> list[Window]:
        """Return per (model, version) the labels whose label time (or prediction time) is at or after `since_ms`."""
        column = BY_COLUMNS[by]
        c = LABELS.c
        query = (
            sa.select(
                c.model_name,
                c.model_version,
                sa.func.count(),
                sa.func.sum(c.correct),
                sa.func.count(c.correct),
                sa.func.sum(c.log_loss),
                sa.func.count(c.log_loss),
                sa.func.sum(c.abs_error),
                sa.func.count(c.abs_error),
            )
            .where(column >= since_ms)
            .group_by(c.model_name, c.model_version)
        )
        rows = self._run(lambda connection: connection.execute(query).all())
        return [
            Window(
                r[0],
                r[1],
                int(r[2]),
                (float(r[3] or 0), int(r[4])),
                (float(r[5] or 0), int(r[6])),
                (float(r[7] or 0), int(r[8])),
            )
            for r in rows
        ]

    def close(self) -> None:
        """Close this process's connections (tests, and a clean shutdown)."""
        with self._lock:
            if self._engine is not None and self._pid == os.getpid():
                self._engine.dispose()
            self._engine = None
