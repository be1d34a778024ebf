"""`make compile IMAGE_REGISTRY=…` / `--image`: every step runs the user's image, pinned by the recorded digest."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components import COMPONENT_IMAGE
from pipelines.compile import COMPILED_DIR, main
from pipelines.images import Record
from pipelines.run_local import git_commit
from pipelines.submit import lineage_commit

REGISTRY = "registry.example.com:5000/team"
TAG = COMPONENT_IMAGE.rsplit(":", 1)[1]
DIGEST = "sha256:" + "0123456789abcdef" * 4
COMMIT = "4f2a" * 10


def compiled(directory: Path, variant: str) -> tuple[set[str], str, int]:
    """Return the images of every executor, the git_commit default and the number of executors."""
    spec, _ = yaml.safe_load_all((directory / f"training-{variant}.yaml").read_text())
    executors = spec["deploymentSpec"]["executors"].values()
    default = spec["root"]["inputDefinitions"]["parameters"]["git_commit"]["defaultValue"]
    return {executor["container"]["image"] for executor in executors}, default, len(executors)


def write_record(path: Path, registry: str = REGISTRY) -> Path:
    path.write_text(Record(registry=registry, revision=COMMIT, digests={"plinth-components": DIGEST}).to_json())
    return path


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_a_recorded_digest_pins_every_step_and_the_commit_becomes_the_default(tmp_path: Path, variant: str):
    record = write_record(tmp_path / "images.json")
    assert main(["--registry", REGISTRY + "/", "--record", str(record), "--out", str(tmp_path / "out")]) == 0
    images, git_commit, count = compiled(tmp_path / "out", variant)
    _, committed_default, committed_count = compiled(COMPILED_DIR, variant)
    assert images == {f"{REGISTRY}/plinth-components:{TAG}@{DIGEST}"}
    assert count == committed_count
    assert git_commit == COMMIT
    assert committed_default == "unknown"


def test_without_a_record_of_that_registry_the_image_goes_by_tag(tmp_path: Path):
    record = write_record(tmp_path / "images.json", registry="ghcr.io/someone-else")
    assert main(["--registry", REGISTRY, "--record", str(record), "--out", str(tmp_path / "out")]) == 0
    images, git_commit, _ = compiled(tmp_path / "out", "cpu")
    assert images == {f"{REGISTRY}/plinth-components:{TAG}"}
    assert git_commit == "unknown"


def test_an_explicit_image_and_commit_are_used_as_given(tmp_path: Path):
    image = f"{REGISTRY}/my-steps@{DIGEST}"
    assert main(["--image", image, "--git-commit", COMMIT, "--out", str(tmp_path)]) == 0
    for variant in ("cpu", "gpu"):
        images, git_commit, _ = compiled(tmp_path, variant)
        assert images == {image}
        assert git_commit == COMMIT


def test_a_malformed_record_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    record = tmp_path / "images.json"
    record.write_text('{"registry": "x", "revision": "y", "images": {"plinth-components": {"digest": "sha256:1"}}}')
    assert main(["--registry", REGISTRY, "--record", str(record), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"compile: {record}: digest of plinth-components is not sha256:<64 hex>\n"
    assert not (tmp_path / "out").exists()


def test_make_submit_runs_your_pipeline_with_the_commit_its_image_was_built_from(tmp_path: Path):
    image = f"{REGISTRY}/plinth-components@{DIGEST}"
    assert main(["--image", image, "--git-commit", COMMIT, "--out", str(tmp_path)]) == 0
    assert lineage_commit(tmp_path / "training-cpu.yaml") == COMMIT
    assert lineage_commit(COMPILED_DIR / "training-cpu.yaml") == git_commit(), "the committed YAML: this checkout"
