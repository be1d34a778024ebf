"""The labelled production window as a source: what a served model saw, joined with the labels that came later.

`production:<archive>?model=<name>&since=<YYYY-MM-DD>[&target=<column>]` reads the payload archive that the
model service writes (`serving/model_service/archive.py`): a directory or an object-store URL (`s3://`,
`gs://`, `abfs://`, credentials from the standard environment as for any source, `read.py`). The predictions
of every version of `model` are joined with their labels on request_id; a prediction is kept when its label
was given at or after `since` (UTC midnight). The table is the input columns plus the truth as `target`
(default `label`), one row per request id, sorted by it: the same archive gives the same rows, in the same
order, and so the same data hash.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import pandas as pd

from components.common.redact import redact
from components.ingest.read import IngestError, check_url, open_filesystem, reason

PREFIX = "production:"
LABELS_DIR = "labels"
# What the archive writes besides the inputs (an input named like one of them is stored as `input.<name>`).
KEY_COLUMNS = ("request_id", "predicted_at", "label", "probabilities", "value", "model", "version", "day")
INPUT_PREFIX = "input."
OPTIONS = ("model", "since", "target")
DEFAULT_TARGET = "label"
TRUTH = "__plinth_truth"  # the joined truth before it is named `target` (no input can be called so)


def is_production(source: str) -> bool:
    """Return whether `source` names the labelled production window of a payload archive."""
    return source.startswith(PREFIX)


def parse(source: str) -> tuple[str, str, datetime, str]:
    """Return (archive URL, model, since, target column) of a `production:` source.

    Raises:
        IngestError: a missing or unknown option, a `since` that is not a date, credentials in the URL.
    """
    spec = source.removeprefix(PREFIX)
    url, _, query = spec.partition("?")
    shown = describe(source)
    if not url:
        raise IngestError(
            f"{shown}: give the archive, e.g. production:s3://bucket/payloads?model=NAME&since=YYYY-MM-DD"
        )
    check_url(url)
    options = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise IngestError(f"{shown}: unknown option(s) {', '.join(unknown)}; expected {', '.join(OPTIONS)}")
    model = options.get("model", [""])[-1]
    raw_since = options.get("since", [""])[-1]
    if not model or not raw_since:
        raise IngestError(f"{shown}: model= and since= are required (since: a date, YYYY-MM-DD)")
    try:
        since = datetime.strptime(raw_since, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise IngestError(f"{shown}: since={raw_since!r} is not a date (YYYY-MM-DD)") from None
    target = options.get("target", [DEFAULT_TARGET])[-1] or DEFAULT_TARGET
    return url.rstrip("/"), model, since, target


def describe(source: str) -> str:
    """Return the source as it may be logged: the archive URL masked, the options (no secrets) kept."""
    url, _, query = source.removeprefix(PREFIX).partition("?")
    return f"{PREFIX}{redact(url)}" + (f"?{query}" if query else "")


def lineage(source: str) -> str:
    """Return where the rows lie (the archive URL), for MLflow's dataset source."""
    return source.removeprefix(PREFIX).partition("?")[0]


def _dataset(filesystem: Any, path: str) -> Any:
    import pyarrow.dataset as ds

    return ds.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive")


def load_production(source: str) -> pd.DataFrame:
    """Read the labelled production window named by `source` (see the module docstring).

    Raises:
        IngestError: one line naming the archive (credentials masked) and why it cannot be read.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    url, model, since, target = parse(source)
    shown = describe(source)
    filesystem, root = open_filesystem(url)
    root = root.rstrip("/")
    since_day = since.strftime("%Y-%m-%d")
    try:
        labels_path = f"{root}/{LABELS_DIR}/model={model}"
        payloads_path = f"{root}/model={model}"
        for path, what in ((labels_path, "labels"), (payloads_path, "predictions")):
            if not filesystem.exists(path):
                raise FileNotFoundError(f"no {what} of model {model!r} under the archive")
        labels = (
            _dataset(filesystem, labels_path)
            .to_table(
                columns=["request_id", "truth", "labelled_at"],
                filter=(ds.field("day") >= since_day)
                & (ds.field("labelled_at") >= pa.scalar(since, pa.timestamp("ms", tz="UTC"))),
            )
            .sort_by([("request_id", "ascending"), ("labelled_at", "ascending")])
        )
        payload_set = _dataset(filesystem, payloads_path)
        payloads = payload_set.to_table(filter=ds.field("request_id").isin(pc.unique(labels["request_id"])))
    except Exception as error:
        raise IngestError(f"cannot read {shown}: {reason(error)}") from error
    inputs = [name for name in payloads.column_names if name not in KEY_COLUMNS]
    stored_names = {name: name.removeprefix(INPUT_PREFIX) for name in inputs}
    if target in stored_names.values():
        raise IngestError(f"{shown}: target={target!r} is also an input column; choose another target name")
    truths = labels.to_pandas().drop_duplicates("request_id", keep="first")  # the first label wins
    frame = payloads.select(["request_id", *inputs]).to_pandas().drop_duplicates("request_id", keep="first")
    truths = truths[["request_id", "truth"]].rename(columns={"truth": TRUTH})
    frame = frame.merge(truths, on="request_id", how="inner", validate="one_to_one")
    frame = frame.sort_values("request_id", kind="stable").reset_index(drop=True)
    frame[target] = [json.loads(truth) for truth in frame.pop(TRUTH)]
    if frame.empty:
        raise IngestError(f"{shown}: no labelled predictions of model {model!r} labelled since {since_day}")
    return frame.drop(columns="request_id").rename(columns=stored_names)
