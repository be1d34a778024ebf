"""The prediction log: what each answered prediction said, kept on disk until its label arrives.

Labels arrive later than predictions, so every prediction gets a `request_id` and is written to one SQLite
file per model version, `<directory>/<model>/<version>.sqlite`, in WAL mode: the service's worker processes
share it (each opens its own connection), and a stable and a canary on one machine share the directory, so
feedback for either version can be joined wherever it lands. A batch is one `executemany` in one
transaction with `synchronous=NORMAL` (no fsync per commit: a crash may lose the last few predictions,
never corrupt the file).

The log is bounded two ways. Rows: past `max_rows`, the oldest rows are deleted in the same transaction
that wrote the new ones, down to 99 % of the bound, so that a full log pays one delete per 1 % of its rows
rather than one per write. Age: rows older than `max_age_s` can no longer be labelled (late) and are deleted
at most once a second per process. Row ids grow with time and only the oldest rows are ever deleted, so the
row count is `max(id) - min(id) + 1`, two index lookups instead of a table scan.

A request id is `<version>.<replica>.<32 hex>`: the version whose log holds it, the replica that logged it,
and a UUID version 7 (48 bits of Unix milliseconds, then random bits). The replica is, in a pod given its
IPv4 address in PLINTH_POD_IP, that address in 8 hex, so that another replica can forward a label to it;
elsewhere a stable 8-hex hash of the host name. The issue time in the id is what tells a label for a
prediction that was evicted (late, 410) from one for an id that was never issued (unknown, 404) without
keeping anything about evicted rows.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import secrets
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.model_service.predictor import ServedTask

REQUEST_ID = re.compile(r"([0-9A-Za-z_-]{1,64})\.([0-9a-f]{8})\.([0-9a-f]{32})")
# Waiting this long for another worker's write lock (microseconds in practice) before the write counts as failed.
BUSY_TIMEOUT_MS = 200
# A full log drops this share of its rows at once (oldest first): one delete per many writes, not one per write.
EVICT_FRACTION = 0.01
# Rows older than the age bound are deleted at most this often per process: the delete scans them.
EXPIRE_EVERY_S = 1.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    time_ms INTEGER NOT NULL,
    prediction TEXT NOT NULL,
    labelled INTEGER NOT NULL DEFAULT 0,
    label TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_INSERT = "INSERT INTO predictions (request_id, time_ms, prediction) VALUES (?, ?, ?)"


def replica_of(hostname: str | None = None, pod_ip: str = "") -> str:
    """Return the 8-hex tag of the ids this replica issues: its IPv4 pod address, else a host name hash."""
    if names_address(pod_ip):  # an IPv6 pod's ids name no address: a misdirected label is refused (421)
        return f"{int(ipaddress.IPv4Address(pod_ip)):08x}"
    return hashlib.blake2s((hostname or socket.gethostname()).encode(), digest_size=4).hexdigest()


def names_address(pod_ip: str) -> bool:
    """Return whether ids issued with this pod address carry it (an IPv4 address), so labels can be forwarded."""
    try:
        ipaddress.IPv4Address(pod_ip)
    except ValueError:
        return False
    return True


def replica_address(replica: str) -> str:
    """Return the IPv4 address a pod's replica tag spells (see `replica_of`)."""
    return str(ipaddress.IPv4Address(int(replica, 16)))


def new_id(version: str, replica: str, now_ms: int) -> str:
    """Return a fresh request id: version, replica and a UUIDv7 carrying `now_ms`."""
    random = secrets.randbits(74)
    value = (now_ms & (2**48 - 1)) << 80 | 0x7 << 76 | (random >> 62) << 64 | 0b10 << 62 | random & (2**62 - 1)
    return f"{version}.{replica}.{value:032x}"


def parse_id(request_id: str) -> tuple[str, str, int] | None:
    """Return (version, replica, issue time in ms) of a request id, or None when it is not one."""
    match = REQUEST_ID.fullmatch(request_id)
    if match is None:
        return None
    version, replica, hex_id = match.groups()
    return version, replica, uuid.UUID(hex_id).int >> 80


@dataclass(frozen=True)
class Logged:
    """One logged prediction: when it was answered, what it said, and whether a label was already joined."""

    time_ms: int
    prediction: dict[str, Any]
    labelled: bool


@dataclass(frozen=True)
class Written:
    """What one write did to the bound: rows dropped because the log was full or too old, and the rows left."""

    evicted: int
    expired: int
    rows: int


def task_to_json(task: ServedTask) -> str:
    """Serialize the task a log's predictions were made for, so feedback for any version is checked by its own."""
    return json.dumps({"kind": task.kind, "classes": list(task.classes), "probabilities": task.probabilities})


def task_from_json(text: str) -> ServedTask:
    """Read a task written by `task_to_json`."""
    raw = json.loads(text)
    return ServedTask(raw["kind"], tuple(raw["classes"]), bool(raw["probabilities"]))


class PredictionLog:
    """The per-version prediction logs of one model under one directory, as seen by one process.

    Connections are opened on first use in the process that uses them (BentoML's workers are separate
    processes), one per version file, shared by that process's threads under a lock.
    """

    def __init__(self, directory: Path, model_name: str, max_rows: int, max_age_s: float) -> None:
        self.directory = directory / model_name
        self.max_rows = max_rows
        self.max_age_ms = int(max_age_s * 1000)
        self._lock = threading.Lock()
        self._pid = 0
        self._connections: dict[str, sqlite3.Connection] = {}
        self._expired_at = 0.0

    def path(self, version: str) -> Path:
        """Return the file that holds `version`'s predictions."""
        return self.directory / f"{version}.sqlite"

    def open(self, version: str, task: ServedTask) -> int:
        """Create (or reopen) `version`'s log, record the task its predictions answer; return its rows."""
        with self._lock:
            connection = self._connect(version, create=True)
            assert connection is not None  # create=True always connects or raises
            with connection:
                connection.execute("INSERT OR REPLACE INTO meta VALUES ('task', ?)", (task_to_json(task),))
            first, last = connection.execute("SELECT min(id), max(id) FROM predictions").fetchone()
        return 0 if first is None else last - first + 1

    def write(self, version: str, rows: list[tuple[str, int, str]]) -> Written:
        """Append (request_id, time_ms, prediction JSON) rows, then enforce both bounds; one transaction.

        Raises:
            sqlite3.Error: the file could not be written (disk full, I/O error, locked past the timeout).
        """
        if not rows:
            return Written(0, 0, 0)
        with self._lock:
            connection = self._connect(version, create=True)
            assert connection is not None
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(_INSERT, rows)
                last = connection.execute("SELECT max(id) FROM predictions").fetchone()[0]
                first = connection.execute("SELECT min(id) FROM predictions").fetchone()[0]
                evicted = 0
                if last - first + 1 > self.max_rows:  # full: make room for the next EVICT_FRACTION at once
                    keep = self.max_rows - int(self.max_rows * EVICT_FRACTION)
                    evicted = connection.execute("DELETE FROM predictions WHERE id <= ?", (last - keep,)).rowcount
                expired = self._expire(connection, rows[-1][1])
                first = connection.execute("SELECT min(id) FROM predictions").fetchone()[0]
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return Written(evicted, expired, last - first + 1)

    def _expire(self, connection: sqlite3.Connection, now_ms: int) -> int:
        """Delete the prefix of rows too old to be labelled, at most once per EXPIRE_EVERY_S."""
        now = time.monotonic()
        if now - self._expired_at < EXPIRE_EVERY_S:
            return 0
        self._expired_at = now
        young = connection.execute(
            "SELECT id FROM predictions WHERE time_ms > ? ORDER BY id LIMIT 1", (now_ms - self.max_age_ms,)
        ).fetchone()
        if young is None:  # keep the newest row: the row count and the eviction bound read it
            young = connection.execute("SELECT max(id) FROM predictions").fetchone()
        return connection.execute("DELETE FROM predictions WHERE id < ?", (young[0],)).rowcount

    def task(self, version: str) -> ServedTask | None:
        """Return the task `version`'s predictions answer, or None when this directory has no log for it."""
        with self._lock:
            connection = self._connect(version, create=False)
            if connection is None:
                return None
            row = connection.execute("SELECT value FROM meta WHERE key = 'task'").fetchone()
        return None if row is None else task_from_json(row[0])

    def find(self, version: str, request_id: str) -> tuple[Logged | None, int | None]:
        """Return the logged prediction for `request_id` (None if absent) and the oldest row's time in ms."""
        with self._lock:
            connection = self._connect(version, create=False)
            if connection is None:
                return None, None
            row = connection.execute(
                "SELECT time_ms, prediction, labelled FROM predictions WHERE request_id = ?", (request_id,)
            ).fetchone()
            oldest = connection.execute("SELECT time_ms FROM predictions ORDER BY id LIMIT 1").fetchone()
        logged = None if row is None else Logged(row[0], json.loads(row[1]), bool(row[2]))
        return logged, None if oldest is None else oldest[0]

    def label(self, version: str, request_id: str, label: Any) -> bool:
        """Mark `request_id` labelled with `label`; False when it already was (or is gone): a duplicate."""
        with self._lock:
            connection = self._connect(version, create=False)
            if connection is None:
                return False
            with connection:
                cursor = connection.execute(
                    "UPDATE predictions SET labelled = 1, label = ? WHERE request_id = ? AND labelled = 0",
                    (json.dumps(label), request_id),
                )
        return cursor.rowcount == 1

    def _connect(self, version: str, create: bool) -> sqlite3.Connection | None:
        """Return this process's connection to `version`'s file (None if absent and not `create`); lock held."""
        if self._pid != os.getpid():  # a forked child must not use its parent's connections
            self._pid, self._connections = os.getpid(), {}
        connection = self._connections.get(version)
        if connection is not None:
            return connection
        path = self.path(version)
        if not create and not path.is_file():
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.executescript(_SCHEMA)
        self._connections[version] = connection
        return connection

    def close(self) -> None:
        """Close this process's connections (tests, and a clean shutdown)."""
        with self._lock:
            for connection in self._connections.values():
                connection.close()
            self._connections = {}
