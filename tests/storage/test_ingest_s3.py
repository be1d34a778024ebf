"""Ingest reads where teams keep data: single files and hive-partitioned Parquet on a real S3 API server."""

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.common import tracking
from components.ingest.core import IngestError, dataset_hash, load_source, run
from tests.engines import MotoS3Server, S3Credentials


def table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5],
            "city": ["a", "b", None, "a", "c", "b"],
            "label": [0, 1, 0, 1, 0, 1],
            "region": ["eu", "eu", "eu", "us", "us", "us"],
        }
    )


def write_partitioned(frame: pd.DataFrame, root: Path) -> None:
    """Write `frame` as hive partitions by region (`region=eu/part-0.parquet`), plus a `_SUCCESS` marker."""
    pq.write_to_dataset(
        pa.Table.from_pandas(frame, preserve_index=False),
        str(root),
        partition_cols=["region"],
        basename_template="part-{i}.parquet",
    )
    (root / "_SUCCESS").write_text("")


def upload(server: MotoS3Server, local: Path, bucket: str, prefix: str) -> None:
    client = server.client()
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(local).as_posix()}")


def test_csv_and_parquet_objects_read_as_the_local_files_do(s3_server, s3_env, tmp_path: Path):
    bucket = s3_server.create_bucket("files")
    frame = table()
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    upload(s3_server, tmp_path, "files", "data")
    for name in ("t.csv", "t.parquet"):
        remote = load_source(f"{bucket}/data/{name}")
        pd.testing.assert_frame_equal(remote, load_source(str(tmp_path / name)))
        assert dataset_hash(remote) == dataset_hash(load_source(str(tmp_path / name)))


def test_a_partitioned_table_reads_whole_with_its_partition_column(s3_server, s3_env, tmp_path: Path):
    bucket = s3_server.create_bucket("partitioned")
    local = tmp_path / "table"
    write_partitioned(table(), local)
    upload(s3_server, local, "partitioned", "warehouse/table")
    remote = load_source(f"{bucket}/warehouse/table")
    assert len(remote) == 6
    assert set(remote["region"]) == {"eu", "us"}
    assert remote.sort_values("x").reset_index(drop=True)["label"].tolist() == table()["label"].tolist()
    # The same objects give the same hash wherever they lie: the local folder and the bucket agree.
    assert dataset_hash(remote) == dataset_hash(load_source(str(local)))
    assert dataset_hash(load_source(f"{bucket}/warehouse/table/")) == dataset_hash(remote)


def test_a_changed_object_changes_the_hash(s3_server, s3_env, tmp_path: Path):
    bucket = s3_server.create_bucket("changing")
    frame = table()
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    upload(s3_server, tmp_path, "changing", "d")
    before = dataset_hash(load_source(f"{bucket}/d/t.parquet"))
    frame.loc[2, "x"] = 99.0
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    upload(s3_server, tmp_path, "changing", "d")
    assert dataset_hash(load_source(f"{bucket}/d/t.parquet")) != before


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("absent.parquet", r"^source not found: s3://errors/absent\.parquet \("),
        ("bad.parquet", r"^cannot parse s3://errors/bad\.parquet: "),
        ("data.xlsx", r"^cannot read s3://errors/data\.xlsx: unsupported file type '\.xlsx'"),
    ],
)
def test_unreadable_objects_get_one_line_naming_the_url(s3_server, s3_env, key: str, expected: str):
    if "errors" not in list_buckets(s3_server):
        s3_server.create_bucket("errors")
    s3_server.client().put_object(Bucket="errors", Key="bad.parquet", Body=b"not parquet")
    s3_server.client().put_object(Bucket="errors", Key="data.xlsx", Body=b"x")
    with pytest.raises(IngestError, match=expected) as raised:
        load_source(f"s3://errors/{key}")
    assert "\n" not in str(raised.value)


def list_buckets(server: MotoS3Server) -> set[str]:
    return {bucket["Name"] for bucket in server.client().list_buckets()["Buckets"]}


def test_no_credentials_is_one_line_and_secrets_never_show(s3_server, s3_env, monkeypatch, tmp_path: Path):
    s3_server.create_bucket("nocreds")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup beyond 127.0.0.1
    with pytest.raises(IngestError, match=r"^cannot read s3://nocreds/x\.csv: no usable credentials") as raised:
        load_source("s3://nocreds/x.csv")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "s3://AKIAEXAMPLE:very-secret@bucket/data.parquet",
        "abfs://container@account.dfs.core.windows.net/t.parquet?sv=2024&sig=very-secret",
        "gs://bucket/t.csv?token=very-secret",
    ],
)
def test_credentials_in_the_url_are_refused_and_masked(url: str):
    with pytest.raises(IngestError, match="credentials in the URL are refused") as raised:
        load_source(url)
    assert "very-secret" not in str(raised.value)
    assert "AKIAEXAMPLE" not in str(raised.value)


def test_an_unreachable_store_fails_fast_with_one_line(monkeypatch, tmp_path: Path):
    from serving.embedded.processes import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    with pytest.raises(IngestError, match=r"^cannot read s3://bucket/t\.parquet: ") as raised:
        load_source("s3://bucket/t.parquet")
    assert "\n" not in str(raised.value)


def test_the_ingest_step_logs_remote_lineage(s3_server, s3_env: S3Credentials, tmp_path: Path):
    bucket = s3_server.create_bucket("lineage")
    table().to_parquet(tmp_path / "t.parquet", index=False)
    upload(s3_server, tmp_path, "lineage", "d")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    source = f"{bucket}/d/t.parquet"
    run_id, digest = run(source, "label", str(tmp_path / "out.parquet"), uri, "e", "job")
    logged = tracking.connect(uri).get_run(run_id)
    assert logged.data.tags["plinth.data_hash"] == digest == dataset_hash(load_source(str(tmp_path / "t.parquet")))
    assert logged.data.params["source"] == source
    [dataset] = logged.inputs.dataset_inputs
    assert source in dataset.dataset.source
    assert pd.read_parquet(tmp_path / "out.parquet").shape == (6, 4)
