"""Predictions as columns: the shape of /predict's answers (`serving/model_service/schema.py`), for a table.

Each answer of the model service is an object with `label` (classification), `probability` (binary: P of the
positive class), `probabilities` (one per class, by class name), or `prediction` (regression), and
`model_name`, `model_version`, `request_id`. Here each of those is one Arrow column (`probabilities` a struct
with one field per class), built at once from the model's output instead of one dict per row, with the same
decision rule (`task.predicted_index`): a binary label is the positive class when its probability is at least
the model's threshold (0.5 without one), a multiclass label the most probable class. Each row also says when it
was scored and which source row it answers.

With `explain`, each answer also carries /explain's `base_value` and `contributions` (`components/common/explain.py`:
per output, per raw feature, in the units the run records), so base + contributions = the model's output.

Request ids have the model service's form, `<version>.<32 hex>` with a UUID version 7 inside (48 bits of the
scoring time in ms, then random bits: `serving/model_service/feedback.py` reads them), drawn for a whole chunk
at once from a generator seeded from the operating system's randomness.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from components.common.explain import Explanation
from components.common.task import BINARY, REGRESSION, predicted_index
from serving.model_service.predictor import ServedTask

# Largest byte count an Arrow `string` column (32-bit offsets) holds.
MAX_STRING_BYTES = 2**31 - 1
TIMESTAMP = pa.timestamp("ms", tz="UTC")
# Each byte's two lower-case hex digits as one 16-bit cell (`HEX_PAIRS[b]` viewed as 2 bytes spells `f"{b:02x}"`).
HEX_PAIRS = np.frombuffer(b"".join(f"{byte:02x}".encode("ascii") for byte in range(256)), dtype=np.uint16)


class RequestIds:
    """Draws request ids in the model service's format for whole chunks."""

    def __init__(self, version: str) -> None:
        self.prefix = np.frombuffer(f"{version}.".encode(), dtype=np.uint8)
        self.random = np.random.default_rng(secrets.randbits(128))

    def draw(self, rows: int, now_ms: int) -> pa.Array:
        """Return `rows` fresh ids issued at `now_ms`: `<version>.` + the UUIDv7 as 32 hex digits.

        Every id has the same width, so the column's bytes are written as one (rows, width) block and handed to
        Arrow as its data buffer, with offsets every `width` bytes: no string is made one at a time. The 16
        octets of every id are drawn as one buffer of random bytes, stamped (time, version, variant) in place and
        spelled in hex by one gather of both digits of each byte (`HEX_PAIRS`): a gather per hex digit cost
        20-40 ms per 100,000 ids, `bytes.hex` and its string ~16 ms, this one ~7 ms (load 10).
        """
        octets = np.frombuffer(self.random.bytes(rows * 16), dtype=np.uint8).reshape(rows, 16).copy()
        octets[:, :6] = np.frombuffer((now_ms & (2**48 - 1)).to_bytes(6, "big"), dtype=np.uint8)
        octets[:, 6] = 0x70 | (octets[:, 6] & 0x0F)  # version 7, then 12 random bits
        octets[:, 8] = 0x80 | (octets[:, 8] & 0x3F)  # the RFC 9562 variant, then 62 random bits
        digits = HEX_PAIRS[octets].view(np.uint8)  # (rows, 16) pairs of ASCII digits: (rows, 32)
        start = len(self.prefix)
        width = start + 32
        text = np.empty((rows, width), dtype=np.uint8)
        text[:, :start] = self.prefix
        text[:, start:] = digits
        large = rows * width > MAX_STRING_BYTES
        offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int64 if large else np.int32)
        kind = pa.large_string() if large else pa.string()
        ids = pa.Array.from_buffers(kind, rows, [None, pa.py_buffer(offsets), pa.py_buffer(text)])
        return ids.cast(pa.string()) if large else ids


def _labels(task: ServedTask, index: np.ndarray) -> pa.Array:
    """Return the class at each position of `index`, typed as the classes are (numbers stay numbers)."""
    return pc.take(pa.array(list(task.classes)), pa.array(index))


def answer_columns(task: ServedTask, output: np.ndarray) -> dict[str, pa.Array]:
    """Return the answer columns for the model's output: label/probability/probabilities, or prediction."""
    if task.kind == REGRESSION:
        return {"prediction": pa.array(np.asarray(output, dtype=np.float64))}
    if not task.probabilities:
        return {"label": pa.array([_plain(label) for label in output.tolist()])}
    columns: dict[str, pa.Array] = {"label": _labels(task, predicted_index(output, task.kind, task.threshold))}
    if task.kind == BINARY:
        columns["probability"] = pa.array(output[:, 1])
    per_class = [pa.array(np.ascontiguousarray(output[:, position])) for position in range(output.shape[1])]
    columns["probabilities"] = pa.StructArray.from_arrays(per_class, names=task.class_names)
    return columns


def explanation_columns(explanation: Explanation) -> dict[str, pa.Array]:
    """Return /explain's `base_value` and `contributions` (per output, per raw feature) as struct columns."""
    outputs, features = explanation.outputs, explanation.feature_names
    base = [pa.array(np.ascontiguousarray(explanation.base_values[:, k])) for k in range(len(outputs))]
    per_output = [
        pa.StructArray.from_arrays(
            [pa.array(np.ascontiguousarray(explanation.contributions[:, j, k])) for j in range(len(features))],
            names=features,
        )
        for k in range(len(outputs))
    ]
    return {
        "base_value": pa.StructArray.from_arrays(base, names=outputs),
        "contributions": pa.StructArray.from_arrays(per_output, names=outputs),
    }


def _plain(label: Any) -> Any:
    return label.item() if isinstance(label, np.generic) else label
