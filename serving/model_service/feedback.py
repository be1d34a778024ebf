"""Request ids, and the task a version's predictions answer, as the prediction store keeps them.

A request id is `<version>.<32 hex>`: the version that answered it and a UUID version 7 (48 bits of Unix
milliseconds, then random bits), so ids are unique across replicas without coordination and sort by issue
time. Ids issued before the shared store, `<version>.<8 hex replica>.<32 hex>`, are still read (the replica
part is ignored): their predictions were in a pod's own log and are gone, so such a label answers 404 or
410, never an error. The issue time in the id tells a label for a prediction purged for age (late, 410)
from one for an id that was never issued (unknown, 404) without keeping anything about purged rows.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid

from serving.model_service.predictor import ServedTask

REQUEST_ID = re.compile(r"([0-9A-Za-z_-]{1,64})\.(?:[0-9a-f]{8}\.)?([0-9a-f]{32})")


def new_id(version: str, now_ms: int) -> str:
    """Return a fresh request id: the version and a UUIDv7 carrying `now_ms`."""
    random = secrets.randbits(74)
    value = (now_ms & (2**48 - 1)) << 80 | 0x7 << 76 | (random >> 62) << 64 | 0b10 << 62 | random & (2**62 - 1)
    return f"{version}.{value:032x}"


def parse_id(request_id: str) -> tuple[str, int] | None:
    """Return (version, issue time in ms) of a request id (either format), or None when it is not one."""
    match = REQUEST_ID.fullmatch(request_id)
    if match is None:
        return None
    version, hex_id = match.groups()
    return version, uuid.UUID(hex_id).int >> 80


def task_to_json(task: ServedTask) -> str:
    """Serialize the task a version's predictions were made for, so feedback for any version is checked by its own."""
    return json.dumps({"kind": task.kind, "classes": list(task.classes), "probabilities": task.probabilities})


def task_from_json(text: str) -> ServedTask:
    """Read a task written by `task_to_json`."""
    raw = json.loads(text)
    return ServedTask(raw["kind"], tuple(raw["classes"]), bool(raw["probabilities"]))
