"""KFP shell of the score step."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Metrics, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def score(
    source: str,
    model_name: str,
    version: str,
    alias: str,
    out: str,
    tracking_uri: str,
    experiment: str,
    job_name: str,
    counts: Output[Metrics],
    chunk_rows: int = 100_000,
    keep: str = "",
    max_psi: float = 0.25,
    require_signature: bool = True,
    verify_key: str = "",
    explain: bool = False,
    trigger: str = "",
    git_commit: str = "",
) -> NamedTuple("ScoreOutputs", [("run_id", str), ("rows_scored", int), ("rows_rejected", int)]):  # type: ignore[valid-type]
    """Score every row of a table with a registered version; write predictions and rejected rows as Parquet.

    Args:
        source: A .csv/.parquet file or a folder of (hive-partitioned) Parquet files, as a path or an `s3://`,
            `gs://` or `abfs://` URL (credentials from the environment, as ingest reads them).
        model_name: Registered model to score with.
        version: Its version; "" scores with `alias` instead.
        alias: The alias to resolve when no version is given (e.g. champion).
        out: Directory or object-store prefix; predictions go to `<out>/predictions/`, refused rows with their
            reasons to `<out>/rejects/` (hive-partitioned by model, version and day).
        tracking_uri: MLflow tracking URI (the registry, and where the scoring run is logged).
        experiment: MLflow experiment of the scoring run.
        job_name: Pipeline job name, used as the run's name.
        counts: Rows in, scored and rejected, and the largest drift PSI (shown in the dashboard).
        chunk_rows: Rows read and scored at a time (memory is about this many rows).
        keep: Comma-separated source columns copied beside each answer (an id to join on).
        max_psi: PSI above which a feature is reported as drifted.
        require_signature: Refuse a version that is not signed (PLINTH_REQUIRE_SIGNATURE).
        verify_key: PEM public key file the signature is checked with ("" for PLINTH_VERIFY_KEY or the local
            store's key).
        explain: Add each answer's per-feature contributions (`base_value`, `contributions`: /explain's);
            plinth's own models only. Costs far more than scoring for the MLP (sampling Shapley).
        trigger: What started the run, as pipelines/triggers writes it (JSON; "" when a person did).
        git_commit: The code's commit, tagged on the run for lineage.

    Returns:
        run_id: The scoring run in MLflow; rows_scored and rows_rejected: where every source row went.
    """
    from collections import namedtuple

    from components.score.core import Request, run

    request = Request(source, model_name, version, alias, out, chunk_rows, keep, max_psi, require_signature, verify_key)
    summary = run(request, tracking_uri, experiment, job_name, trigger, git_commit)
    counts.log_metric("rows_in", summary.rows_in)
    counts.log_metric("rows_scored", summary.scored)
    counts.log_metric("rows_rejected", summary.rejected)
    if summary.drift is not None and summary.drift.psi:
        counts.log_metric("drift_max_psi", max(summary.drift.psi.values()))
    ScoreOutputs = namedtuple("ScoreOutputs", ["run_id", "rows_scored", "rows_rejected"])
    return ScoreOutputs(summary.run_id, summary.scored, summary.rejected)
