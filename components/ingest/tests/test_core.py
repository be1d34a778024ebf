import json
from pathlib import Path

import pandas as pd
import pytest

from components.common import tracking
from components.common.redact import redact
from components.ingest.core import IngestError, dataset_hash, load_source, run, snake_case
from components.register.core import trigger_tags

TRIGGER = json.dumps(
    {
        "kind": "new_data",
        "reason": "data.csv changed: sha256 0123456789ab, champion v1 has fedcba987654",
        "values": {"rows": 2},
        "time": "2026-11-23T12:00:00+00:00",
        "decision": "start",
    }
)


def test_builtin_dataset_ships_with_snake_case_features():
    frame = load_source("sklearn:breast_cancer")
    assert frame.shape == (569, 31)
    assert "mean_radius" in frame.columns
    assert set(frame["target"].unique()) == {0, 1}


def test_unknown_builtin_names_the_known_ones():
    with pytest.raises(IngestError, match="sklearn:breast_cancer"):
        load_source("sklearn:nope")


def test_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(IngestError, match="source file not found"):
        load_source(str(tmp_path / "absent.csv"))


def test_unsupported_suffix(tmp_path: Path):
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    with pytest.raises(IngestError, match="unsupported file type"):
        load_source(str(path))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_user_files_round_trip(tmp_path: Path, suffix: str):
    frame = pd.DataFrame({"a": [1.0, 2.0], "label": [0, 1]})
    path = tmp_path / f"data{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    pd.testing.assert_frame_equal(load_source(str(path)), frame)


def test_unparseable_file_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(IngestError, match="cannot parse"):
        load_source(str(path))


def test_hash_tracks_content_and_columns():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    same = dataset_hash(frame.copy())
    assert dataset_hash(frame) == same
    changed = frame.copy()
    changed.loc[0, "a"] = 1.5
    assert dataset_hash(changed) != same
    assert dataset_hash(frame.rename(columns={"a": "z"})) != same


def test_snake_case():
    assert snake_case("mean radius") == "mean_radius"
    assert snake_case("Worst Area (mm)") == "worst_area_mm"


def test_run_tags_the_parent_run_with_its_trigger(tmp_path: Path):
    """A run the gate rejects never reaches register: the parent run must say why it ran from the start."""
    source = tmp_path / "data.csv"
    pd.DataFrame({"a": [1.0, 2.0], "label": [0, 1]}).to_csv(source, index=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id, digest = run(str(source), "label", str(tmp_path / "data.parquet"), uri, "e", "job", TRIGGER)
    tags = tracking.connect(uri).get_run(run_id).data.tags
    assert {key: tags.get(key) for key in trigger_tags(TRIGGER)} == trigger_tags(TRIGGER)
    assert tags["plinth.trigger.kind"] == "new_data"
    assert json.loads(tags["plinth.trigger.values"]) == {"rows": 2}
    assert tags["plinth.data_hash"] == digest
    assert tags[tracking.TAG_KIND] == "pipeline"


def test_an_unreadable_source_still_leaves_a_failed_run_with_its_trigger(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(IngestError, match="source file not found"):
        run(str(tmp_path / "absent.csv"), "y", str(tmp_path / "out.parquet"), uri, "e", "job", TRIGGER)
    client = tracking.connect(uri)
    experiment = client.get_experiment_by_name("e")
    assert experiment is not None
    [failed] = client.search_runs([experiment.experiment_id])
    assert failed.info.status == "FAILED"
    assert failed.data.tags["plinth.trigger.kind"] == "new_data"


def test_a_run_a_person_started_has_no_trigger_tags(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id, _ = run("sklearn:wine", "target", str(tmp_path / "data.parquet"), uri, "e", "job")
    assert not [key for key in tracking.connect(uri).get_run(run_id).data.tags if key.startswith("plinth.trigger.")]


def test_a_garbled_trigger_opens_no_run(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(ValueError, match="trigger must be a JSON object"):
        run("sklearn:wine", "target", str(tmp_path / "data.parquet"), uri, "e", "job", "[1]")
    assert tracking.connect(uri).get_experiment_by_name("e") is None


def test_a_partitioned_parquet_folder_reads_as_one_table(tmp_path: Path):
    root = tmp_path / "table"
    for region, rows in {"eu": [1.0, 2.0], "us": [3.0]}.items():
        (root / f"region={region}").mkdir(parents=True)
        pd.DataFrame({"a": rows, "label": [0, 1][: len(rows)]}).to_parquet(root / f"region={region}" / "p.parquet")
    (root / "_SUCCESS").write_text("")
    frame = load_source(str(root))
    assert frame["a"].tolist() == [1.0, 2.0, 3.0]
    assert frame["region"].tolist() == ["eu", "eu", "us"]
    assert dataset_hash(frame) == dataset_hash(load_source(str(root) + "/"))


def test_an_empty_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(IngestError, match=r"^cannot parse .*no Parquet files"):
        load_source(str(tmp_path))


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("s3://AKIA:secret@bucket/x.csv", "s3://***@bucket/x.csv"),
        ("read https://u:p@host/x?sig=abc&se=1 now", "read https://***@host/x?*** now"),
        ("abfs://container@account.dfs.core.windows.net/t", "abfs://container@account.dfs.core.windows.net/t"),
        ("/data/plain.csv", "/data/plain.csv"),
    ],
)
def test_redact_masks_credentials_and_tokens(text: str, masked: str):
    assert redact(text) == masked


def test_a_local_path_with_odd_characters_is_not_a_url(tmp_path: Path):
    path = tmp_path / "what?@.csv"
    pd.DataFrame({"a": [1]}).to_csv(path, index=False)
    assert load_source(str(path))["a"].tolist() == [1]
