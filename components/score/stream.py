"""Score a table chunk by chunk: check each chunk against the contract, predict the valid rows, write both.

Every source row ends in exactly one of two places: an answer in `predictions/` or, with its reasons, in
`rejects/` (the source row's own values, its position and why). A chunk the model itself refuses (an error,
or a non-finite output, where the service would answer 400) is rejected whole with that reason. Nothing is
dropped, and the summary's counts add up: rows in = scored + rejected.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import sklearn

from components.common.explain import NotExplainable, contributions
from components.score.answers import TIMESTAMP, RequestIds, answer_columns, explanation_columns
from components.score.check import Checked, Contract
from components.score.drift import DriftReport, DriftTally
from components.score.drift import sample as rows_of
from components.score.model import LoadedModel, ModelError
from components.score.source import Source
from components.score.write import PREDICTIONS, REJECTS, PartWriter
from serving.model_service.columns import Batch
from serving.model_service.predictor import check_output

# Rows read, checked and scored at a time: memory is about this many rows of the table, whatever its size.
DEFAULT_CHUNK_ROWS = 100_000
WARM_UP_ROWS = 64
SOURCE_ROW, REASON = "source_row", "reject_reason"
ANSWER_COLUMNS = frozenset(
    {"request_id", "label", "probability", "probabilities", "prediction", "model_name", "model_version"}
    | {"scored_at", SOURCE_ROW, "base_value", "contributions"}
)


@dataclass
class Summary:
    """What one scoring run did: rows in, scored and rejected, where they went, drift and the data hash."""

    model_name: str
    model_version: str
    rows_in: int = 0
    scored: int = 0
    rejected: int = 0
    chunks: int = 0
    seconds: float = 0.0
    data_hash: str = ""
    predictions: str = ""
    rejects: str = ""
    drift: DriftReport | None = None
    ignored_columns: list[str] = field(default_factory=list)
    # The signature check's outcome (verified, or unverified where no signature is required).
    verification: str = ""
    run_id: str = ""
    # With explain: the contributions' method and units ("linear (log_odds)"); "" without.
    explained: str = ""

    def line(self) -> str:
        """Return the run in one line, as the step prints it."""
        rate = self.rows_in / self.seconds if self.seconds else 0.0
        return (
            f"score: {self.rows_in} rows in, {self.scored} scored, {self.rejected} rejected with "
            f"{self.model_name} v{self.model_version} ({rate:,.0f} rows/s)"
        )


def data_digest(columns: Sequence[str]) -> hashlib._Hash:
    """Return the running digest of a table, started as ingest's `dataset_hash` starts (its column names)."""
    return hashlib.sha256(",".join(map(str, columns)).encode())


def hash_chunk(digest: hashlib._Hash, chunk: pa.RecordBatch) -> None:
    """Add one chunk's rows to the digest (row hashes, as ingest's `dataset_hash`: the same table, the same hash).

    The frame keeps Arrow's column buffers (`split_blocks`: no copy into one 2-D block); the hash is per column.
    """
    frame = chunk.to_pandas(split_blocks=True)
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())


class Scorer:
    """Scores chunks with one loaded version and writes what becomes of every row."""

    def __init__(
        self, model: LoadedModel, writer: PartWriter, keep: Sequence[str], max_psi: float, explain: bool = False
    ) -> None:
        """Prepare to score with `model`; `explain` adds each answer's per-feature contributions.

        Raises:
            ModelError: `explain` for a model plinth cannot explain (not one of its own).
        """
        self.model = model
        self.estimator = getattr(model.predictor, "estimator", None) if explain else None
        if explain and (self.estimator is None or model.ref.profile is None):
            raise ModelError("explain: contributions are offered for plinth's own models only, not a pyfunc model")
        self.explained = ""
        self.contract = Contract(model.ref.columns)
        self.writer = writer
        self.keep = list(keep)
        self.ids = RequestIds(model.ref.version)
        self.drift = DriftTally(model.ref.profile, max_psi)
        self.warm = False

    def _predict(self, checked: Checked) -> np.ndarray:
        """Return the model's output for the valid rows (warmed up on the first rows, as the service does)."""
        predictor, batch = self.model.predictor, checked.batch
        assert batch is not None
        if not self.warm:
            sample = rows_of(batch, np.arange(min(WARM_UP_ROWS, batch.rows)))
            check_output(predictor.task, predictor.warm_up(sample), sample.rows)
            self.warm = True
        # A chunk whose every value is present, finite and within bounds skips scikit-learn's own finite check of
        # the learner's whole matrix (a quarter of a linear model's time); a non-finite output is still refused.
        with sklearn.config_context(assume_finite=checked.complete):
            output = predictor.predict(batch)
        if output.dtype != object and not np.all(np.isfinite(output)):
            raise ValueError("the model returned a non-finite output for these rows")
        return output

    def chunk(self, number: int, chunk: pa.RecordBatch, first_row: int, summary: Summary) -> None:
        """Check, score and write one chunk; count it into the summary."""
        checked = self.contract.check(chunk)
        valid, reasons = checked.valid, list(checked.reasons)
        positions = np.arange(first_row, first_row + chunk.num_rows, dtype=np.int64)
        if checked.batch is not None:
            try:
                output = self._predict(checked)
            except (ValueError, TypeError) as error:
                if not self.warm:  # a model that cannot score its first rows is broken, not the rows
                    raise ModelError(f"warm-up prediction failed: {' '.join(str(error).split())}") from error
                why = f"the model cannot score this chunk: {' '.join(str(error).split())}"[:300]
                earlier = iter(reasons)
                reasons = [why if ok else next(earlier) for ok in valid]
                valid = np.zeros(chunk.num_rows, dtype=bool)
            else:
                self._write_answers(number, chunk, valid, positions, output, summary, checked.batch)
                self.drift.add(checked.batch)
        if not valid.all():
            refused = chunk.filter(pa.array(~valid))
            table = pa.Table.from_batches([refused]).append_column(SOURCE_ROW, pa.array(positions[~valid]))
            table = table.append_column(REASON, pa.array(reasons, type=pa.string()))
            summary.rejects = self.writer.folder(REJECTS)
            self.writer.submit(REJECTS, number, table)
        summary.scored += int(valid.sum())
        summary.rejected += int((~valid).sum())

    def _explain(self, batch: Batch) -> dict[str, pa.Array]:
        """Return the contribution columns of a batch's rows (`components/common/explain.py`)."""
        assert self.model.ref.profile is not None
        try:
            explanation = contributions(self.estimator, batch.frame, self.model.ref.profile)
        except NotExplainable as error:
            raise ModelError(f"explain: {error}") from error
        self.explained = f"{explanation.method} ({explanation.units})"
        return explanation_columns(explanation)

    def _write_answers(
        self, number: int, chunk: pa.RecordBatch, valid: np.ndarray, positions: np.ndarray, output: np.ndarray,
        summary: Summary, batch: Batch,
    ) -> None:  # fmt: skip
        rows = len(output)
        now_ms = time.time_ns() // 1_000_000
        ref = self.model.ref
        columns: dict[str, pa.Array] = {
            "request_id": self.ids.draw(rows, now_ms),
            **answer_columns(self.model.predictor.task, output),
            "model_name": _constant(ref.name, rows),
            "model_version": _constant(ref.version, rows),
            "scored_at": pa.array(np.full(rows, now_ms, dtype="datetime64[ms]"), type=TIMESTAMP),
            SOURCE_ROW: pa.array(positions[valid]),
        }
        if self.estimator is not None:
            columns.update(self._explain(batch))
        kept = chunk.select(self.keep).filter(pa.array(valid)) if self.keep else None
        for name in self.keep:
            columns[name] = kept.column(name) if kept is not None else None
        summary.predictions = self.writer.folder(PREDICTIONS)
        self.writer.submit(PREDICTIONS, number, pa.table(columns))


def _constant(value: str, rows: int) -> pa.DictionaryArray:
    """Return a dictionary-encoded string column holding `value` in every row (one dictionary entry, no strings)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)), pa.array([value], pa.string()))


def score_table(source: Source, scorer: Scorer, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Summary:
    """Score every row of `source`; return the summary (rows in = scored + rejected)."""
    ref = scorer.model.ref
    summary = Summary(ref.name, ref.version, verification=ref.verdict.result)
    summary.ignored_columns = scorer.contract.require(source.columns, source.shown)
    clashes = sorted(set(scorer.keep) & ANSWER_COLUMNS)
    if clashes:
        raise ValueError(f"keep: {', '.join(clashes)} is the name of an answer column")
    missing = [name for name in scorer.keep if name not in source.columns]
    if missing:
        raise ValueError(f"keep: {', '.join(missing)} is not a column of {source.shown}")
    digest = data_digest(source.columns)
    started = time.perf_counter()
    # The hash runs in order on a thread of its own (pandas' hashing releases the GIL) beside the scoring.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="plinth-score-hash") as hashing:
        hashed: Future[None] | None = None
        try:
            for number, chunk in enumerate(source.chunks(chunk_rows)):
                if hashed is not None:
                    hashed.result()
                hashed = hashing.submit(hash_chunk, digest, chunk)
                scorer.chunk(number, chunk, summary.rows_in, summary)
                summary.rows_in += chunk.num_rows
                summary.chunks += 1
            if hashed is not None:
                hashed.result()
        finally:
            scorer.writer.close()
    summary.seconds = time.perf_counter() - started
    summary.data_hash = digest.hexdigest()
    summary.drift = scorer.drift.report()
    summary.explained = scorer.explained
    return summary
