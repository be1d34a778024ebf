"""Score step: score a table with a registered version, write predictions and rejects, log the run to MLflow.

The run is opened first (experiment `plinth-scoring`, tag `plinth.kind=scoring`), so a step that fails still
leaves a FAILED run saying why. It records the lineage: the version scored with and its signature verdict, the
source (masked) and the data hash, the rows in, scored and rejected, and the drift report against the
version's reference profile (`drift/report.md`, one `drift_psi.<feature>` metric each).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from components.common import signing
from components.common.redact import redact
from components.ingest.read import IngestError
from components.score.check import ContractError
from components.score.drift import DEFAULT_MAX_PSI, DriftReport
from components.score.model import ModelError, open_model
from components.score.source import Source
from components.score.stream import DEFAULT_CHUNK_ROWS, Scorer, Summary, score_table
from components.score.write import OutputError, PartWriter

EXPERIMENT = "plinth-scoring"
KIND = "scoring"
TAG_MODEL, TAG_VERSION, TAG_VERIFICATION = "plinth.model_name", "plinth.model_version", "plinth.verification"
TAG_DATA_HASH, TAG_GIT_COMMIT = "plinth.data_hash", "plinth.git_commit"
TAG_EXPLAINED = "plinth.explained"
METRIC_KEY = re.compile(r"[^0-9A-Za-z_\-. /]")


# glibc's mallopt parameters: allocations up to this size come from the heap, and freed heap memory up to this
# much is kept for the next chunk instead of being handed back to the kernel.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest (a chunk's 100,000 x 30 float64 block is 24 MB)
TRIM_THRESHOLD_BYTES = 1 << 31


def keep_freed_memory() -> bool:
    """Let this process reuse a chunk's freed arrays for the next chunk's; return whether glibc took the settings.

    By default glibc maps every array above 128 KB fresh from the kernel and unmaps it when freed, so each
    chunk's arrays (the typed block, the model's copies, the answer columns) are faulted in page by page again:
    in a fresh process that cost a million rows about 40 % of the loop (0.8M -> 1.4-1.9M rows/s with it). The
    step's process scores one table; its peak memory is the same, only kept until the process ends.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, a static build): its allocator's defaults stay
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


class ScoringError(RuntimeError):
    """The step cannot score: one line saying which input (source, model, output, contract) and why."""


@dataclass(frozen=True)
class Request:
    """What to score, with what, and where the answers go (the step's parameters)."""

    source: str
    model_name: str
    version: str = ""
    alias: str = "champion"
    out: str = ""
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    keep: str = ""
    max_psi: float = DEFAULT_MAX_PSI
    # The signature check (serving's PLINTH_REQUIRE_SIGNATURE, PLINTH_VERIFY_KEY): None/"" keep the environment's.
    require_signature: bool | None = None
    verify_key: str = ""
    # Add each answer's per-feature contributions (/explain's, components/common/explain.py).
    explain: bool = False

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """Return `base` with this request's signature settings, in the variables the model service reads."""
        env = dict(base)
        if self.require_signature is not None:
            env[signing.ENV_REQUIRE_SIGNATURE] = "true" if self.require_signature else "false"
        if self.verify_key:
            env[signing.ENV_VERIFY_KEY] = self.verify_key
        return env

    @property
    def kept(self) -> list[str]:
        """Return the source columns copied beside each answer (`keep`, comma-separated)."""
        return [name.strip() for name in self.keep.split(",") if name.strip()]

    @property
    def selector(self) -> str:
        """Return the version asked for, as an MLflow URI."""
        pointer = f"/{self.version}" if self.version else f"@{self.alias}"
        return f"models:/{self.model_name}{pointer}"


def score(request: Request, tracking_uri: str, run_id: str) -> Summary:
    """Open the source, the version and the output, then score every row (no MLflow logging but the tags).

    Raises:
        ScoringError: the source cannot be read, the version cannot be scored with, the output cannot be
            written, or the table lacks a column the model takes.
    """
    if request.chunk_rows < 1:
        raise ScoringError(f"chunk_rows must be at least 1, got {request.chunk_rows}")
    if not request.out:
        raise ScoringError("out is empty: give a directory or an s3://, gs:// or abfs:// prefix for the predictions")
    keep_freed_memory()
    try:
        source = Source(request.source)
        environment = request.environment(os.environ)
        model = open_model(request.model_name, request.version, request.alias, tracking_uri, environment)
        writer = PartWriter(request.out, model.ref.name, model.ref.version, run_id[:12])
        scorer = Scorer(model, writer, request.kept, request.max_psi, request.explain)
        return score_table(source, scorer, request.chunk_rows)
    except (IngestError, ModelError, OutputError, ContractError, ValueError) as error:
        raise ScoringError(" ".join(str(error).split())) from error


def log_summary(client: object, run_id: str, summary: Summary) -> None:
    """Log the run's counts, data hash and drift report to MLflow."""
    from mlflow import MlflowClient

    assert isinstance(client, MlflowClient)
    client.set_tag(run_id, TAG_DATA_HASH, summary.data_hash)
    metrics = {
        "rows_in": summary.rows_in,
        "rows_scored": summary.scored,
        "rows_rejected": summary.rejected,
        "rows_per_second": summary.rows_in / summary.seconds if summary.seconds else 0.0,
    }
    drift = summary.drift
    if drift is not None and drift.psi:
        metrics["drift_max_psi"] = max(drift.psi.values())
        metrics["drift_features_over_limit"] = len(drift.drifted)
        metrics.update({f"drift_psi.{METRIC_KEY.sub('_', name)}": value for name, value in drift.psi.items()})
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value))
    if drift is not None:
        client.log_text(run_id, drift.to_markdown(), "drift/report.md")
    shown = {
        "model_name": summary.model_name,
        "model_version": summary.model_version,
        "rows_in": summary.rows_in,
        "rows_scored": summary.scored,
        "rows_rejected": summary.rejected,
        "data_hash": summary.data_hash,
        "predictions": redact(summary.predictions),
        "rejects": redact(summary.rejects),
        "ignored_columns": summary.ignored_columns,
        "drifted_features": drift.drifted if drift else [],
    }
    client.log_text(run_id, json.dumps(shown, indent=2), "scoring/summary.json")


def run(
    request: Request, tracking_uri: str, experiment: str, job_name: str, trigger: str = "", git_commit: str = ""
) -> Summary:
    """Step entry: open the MLflow run, score, log the summary; a failure closes the run FAILED, saying why.

    Raises:
        ScoringError: one line naming what cannot be scored and why.
    """
    from components.common import tracking
    from components.register.core import trigger_tags

    client = tracking.connect(tracking_uri)
    experiment_id = tracking.ensure_experiment(client, experiment, tracking_uri)
    tags = {tracking.TAG_KIND: KIND, TAG_MODEL: request.model_name, **trigger_tags(trigger)}
    if git_commit:
        tags[TAG_GIT_COMMIT] = git_commit
    run_id = client.create_run(experiment_id, run_name=job_name, tags=tags).info.run_id
    params = {"source": redact(request.source), "model": request.selector, "out": redact(request.out)}
    settings = {"chunk_rows": str(request.chunk_rows), "keep": request.keep, "explain": str(request.explain).lower()}
    for key, value in {**params, **settings}.items():
        client.log_param(run_id, key, value)
    try:
        summary = score(request, tracking_uri, run_id)
    except ScoringError as error:
        tracking.mark_failed(client, run_id, "score", str(error))
        raise
    summary.run_id = run_id
    client.set_tag(run_id, TAG_VERSION, summary.model_version)
    client.set_tag(run_id, TAG_VERIFICATION, summary.verification)
    if summary.explained:
        client.set_tag(run_id, TAG_EXPLAINED, summary.explained)
    log_summary(client, run_id, summary)
    client.set_terminated(run_id)
    print(summary.line())
    if summary.drift is not None:
        report_drift(summary.drift)
    return summary


def report_drift(drift: DriftReport) -> None:
    """Print one line per drifted feature (the step's log)."""
    for name in drift.drifted:
        print(f"score: input drift in {name}: PSI {drift.psi[name]:.3f} > {drift.max_psi}")
