"""Read a table where a team keeps it: a local or object-store file (CSV, Parquet) or a partitioned Parquet folder.

Object stores go through fsspec (`s3fs`, `gcsfs`, `adlfs`) and pyarrow. Credentials come only from each
store's standard environment (the AWS variables, `GOOGLE_APPLICATION_CREDENTIALS`, the `AZURE_STORAGE_*`
variables), never from the URL: a source is logged as a parameter and as dataset lineage, so a URL that carries
a secret (`s3://key:secret@bucket/x`, a `?sig=` token) is refused, and every message names it masked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from components.common.redact import redact

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
SUPPORTED_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES
# fsspec protocol -> the package that implements it (what a missing one is called in the error).
REMOTE_PROTOCOLS = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
    "az": "adlfs",
}
# S3-compatible endpoints (MinIO, SeaweedFS): the AWS SDK's variables first, then MLflow's.
S3_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")
REASON_CHARS = 300
# Connect quickly and retry little: an unreachable store should fail the step in seconds, saying so.
S3_CONFIG = {"connect_timeout": 10, "read_timeout": 60, "retries": {"max_attempts": 3, "mode": "standard"}}


class IngestError(ValueError):
    """The source cannot be read; the message is one line naming the (masked) source and what to fix."""


def protocol(source: str) -> str:
    """Return the URL scheme of `source` ("" for a local path, "file" for file://)."""
    if "://" not in source:
        return ""
    return source.split("://", 1)[0].lower()


def is_remote(source: str) -> bool:
    """Return whether `source` names an object store fsspec reaches (s3://, gs://, abfs:// ...)."""
    return protocol(source) in REMOTE_PROTOCOLS


def storage_options(scheme: str, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Return the fsspec options for `scheme` that the standard environment does not already give it.

    s3fs takes keys and region from the AWS variables itself; the endpoint of an S3-compatible store is passed
    on explicitly (also from `MLFLOW_S3_ENDPOINT_URL`, which the MLflow server of the platform is given), with
    short timeouts. gcsfs and adlfs read their own variables.
    """
    if scheme not in REMOTE_PROTOCOLS:
        return {}
    # A fresh client per read: fsspec would otherwise reuse one built from the environment of an earlier read.
    options: dict[str, Any] = {"skip_instance_cache": True}
    if REMOTE_PROTOCOLS[scheme] != "s3fs":
        return options
    options["config_kwargs"] = S3_CONFIG
    endpoint = next((environ[name] for name in S3_ENDPOINT_VARIABLES if environ.get(name)), None)
    if endpoint:
        options["endpoint_url"] = endpoint
    return options


def check_url(source: str) -> None:
    """Refuse a URL that carries credentials; it would be logged as a parameter and as lineage.

    Raises:
        IngestError: the URL has a user-info part or a query string.
    """
    if "://" not in source:
        return
    parts = urlsplit(source)
    if ("@" in parts.netloc and ":" in parts.netloc.split("@", 1)[0]) or parts.query:
        raise IngestError(
            f"cannot read {redact(source)}: credentials in the URL are refused (it is logged as lineage); "
            "give them in the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_SAS_TOKEN)"
        )


def reason(error: BaseException) -> str:
    """Return the first line of an error, masked and short, led by what kind of failure it is."""
    text = " ".join(str(error).split()) or type(error).__name__
    name = type(error).__name__
    if isinstance(error, FileNotFoundError):
        text = f"not found ({text})"
    elif "Credential" in name:  # botocore's NoCredentialsError, azure-identity's CredentialUnavailableError
        text = f"no usable credentials ({name}: {text})"
    elif isinstance(error, PermissionError) or name in {"AccessDenied", "Forbidden", "ClientAuthenticationError"}:
        text = f"access denied ({name}: {text})"
    return redact(text)[:REASON_CHARS]


def open_filesystem(source: str) -> tuple[Any, str]:
    """Return (fsspec filesystem, path inside it) for `source`.

    Raises:
        IngestError: the store's package is not installed, or its client cannot be set up.
    """
    from fsspec.core import url_to_fs

    scheme = protocol(source)
    try:
        return url_to_fs(source, **storage_options(scheme))
    except ImportError as error:
        package = REMOTE_PROTOCOLS.get(scheme, scheme)
        raise IngestError(f"cannot read {redact(source)}: {scheme}:// needs the {package} package ({error})") from error
    except Exception as error:
        raise IngestError(f"cannot read {redact(source)}: {reason(error)}") from error


def suffix(path: str) -> str:
    """Return the lower-case suffix of the last path segment ("" when it has none)."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def read_parquet_folder(filesystem: Any, path: str) -> pd.DataFrame:
    """Read a Parquet folder as one table; `key=value/` sub-folders become columns (hive partitioning).

    Files are taken in path order, so the same objects give the same rows in the same order, on any store.
    Files whose names start with `_` or `.` (`_SUCCESS`, `.crc`) are not data and are skipped.
    """
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive")
    if not dataset.files:
        raise FileNotFoundError(f"no Parquet files under {path}")
    return arrow_to_pandas(dataset.to_table())


def read_file(filesystem: Any, path: str, kind: str) -> pd.DataFrame:
    """Read one CSV or Parquet object/file through `filesystem`."""
    if kind in CSV_SUFFIXES:
        with filesystem.open(path, "rb") as handle:
            return pd.read_csv(handle)
    import pyarrow.parquet as pq

    return arrow_to_pandas(pq.read_table(path, filesystem=filesystem))


def arrow_to_pandas(table: Any) -> pd.DataFrame:
    """Return the Arrow table as a DataFrame, freeing each Arrow column once it is converted.

    Without it the whole Arrow table and the whole DataFrame are held at once: at a million rows of the
    `make bench-scale` table ingest's peak RSS fell from 924 to 784 MB (read, hash, write) with it. The
    frame keeps one block per column (`split_blocks`), which is what lets the columns go one by one.
    """
    return table.to_pandas(split_blocks=True, self_destruct=True)


@dataclass(frozen=True)
class Located:
    """A source found where it says: its filesystem, path, and whether it is a folder of Parquet files."""

    shown: str
    filesystem: Any
    path: str
    folder: bool
    kind: str


def locate(source: str) -> Located:
    """Find the table at `source` (nothing but its metadata is read), as ingest and batch scoring read it.

    Raises:
        IngestError: one line naming the masked source and why it cannot be read.
    """
    check_url(source)
    shown = redact(source)
    filesystem, path = open_filesystem(source)
    try:
        info = filesystem.info(path)
    except FileNotFoundError as error:
        if is_remote(source):
            hint = "give an existing .csv or .parquet object, or a prefix holding Parquet files"
            raise IngestError(f"source not found: {shown} ({hint})") from error
        raise IngestError(f"source file not found: {shown} (give an existing .csv or .parquet path)") from error
    except Exception as error:
        raise IngestError(f"cannot read {shown}: {reason(error)}") from error
    folder = info.get("type") == "directory"
    kind = suffix(path)
    if not folder and kind not in SUPPORTED_SUFFIXES:
        raise IngestError(
            f"cannot read {shown}: unsupported file type {kind or '(none)'!r}; "
            "use .csv, .parquet, or a folder of Parquet files"
        )
    return Located(shown, filesystem, path, folder, kind)


def read_table(source: str) -> pd.DataFrame:
    """Read the table at `source`: a CSV or Parquet file, or a (partitioned) Parquet folder, local or remote.

    Raises:
        IngestError: one line naming the masked source and why it cannot be read.
    """
    found = locate(source)
    try:
        if found.folder:
            return read_parquet_folder(found.filesystem, found.path)
        return read_file(found.filesystem, found.path, found.kind)
    except Exception as error:
        raise IngestError(f"cannot parse {found.shown}: {reason(error)}") from error
