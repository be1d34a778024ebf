"""The compiled pipeline gives ingest, and only ingest, the object-store credentials of an optional Secret."""

from pathlib import Path

import pytest
import yaml

from pipelines.compile import COMPILED_DIR, compile_all, main
from pipelines.training.compute import DATA_CREDENTIAL_KEYS, DATA_SECRET_MOUNT


def executors(path: Path) -> dict[str, dict]:
    _, platform = yaml.safe_load_all(path.read_text())
    return platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_ingest_alone_reads_the_data_secret_as_the_standard_variables(variant: str):
    platform = executors(COMPILED_DIR / f"training-{variant}.yaml")
    holders = {
        name
        for name, executor in platform.items()
        for binding in executor.get("secretAsEnv", []) + executor.get("secretAsVolume", [])
        if binding["secretName"] == "plinth-data"
    }
    assert holders == {"exec-ingest"}
    [binding] = [b for b in platform["exec-ingest"]["secretAsEnv"] if b["secretName"] == "plinth-data"]
    assert binding["optional"] is True, "a run without the Secret (packaged data, workload identity) still starts"
    assert [pair["envVar"] for pair in binding["keyToEnv"]] == list(DATA_CREDENTIAL_KEYS)
    assert all(pair["envVar"] == pair["secretKey"] for pair in binding["keyToEnv"])
    [volume] = platform["exec-ingest"]["secretAsVolume"]
    assert (volume["mountPath"], volume["optional"]) == (DATA_SECRET_MOUNT, True)


def test_the_secret_name_is_a_compile_flag_and_empty_turns_it_off(tmp_path: Path, capsys):
    assert main(["--out", str(tmp_path / "named"), "--data-secret", "team-lake"]) == 0
    secrets = executors(tmp_path / "named" / "training-cpu.yaml")["exec-ingest"]["secretAsEnv"]
    assert "team-lake" in [binding["secretName"] for binding in secrets]
    compile_all(tmp_path / "none", data_secret="")
    ingest = executors(tmp_path / "none" / "training-cpu.yaml")["exec-ingest"]
    assert "plinth-data" not in [binding["secretName"] for binding in ingest.get("secretAsEnv", [])]
    assert "secretAsVolume" not in ingest
    assert "wrote" in capsys.readouterr().out
