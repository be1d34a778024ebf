"""The chart runs the user's serving image: registry/repository and tag, or the digest `make images` recorded."""

from __future__ import annotations

import pytest
from k8s_tooling import ROOT, load_documents, pod_specs, render, render_with

from pipelines.images import SERVING, Record

REGISTRY = "registry.example.com:5000/team"
DIGEST = "sha256:" + "c0ffee00" * 8


def rendered_images(*args: str) -> set[str]:
    result = render_with(*args)
    assert result.returncode == 0, result.stderr
    specs = pod_specs(load_documents(result.stdout))
    assert len(specs) >= 3, "stable, canary, controller (and the helm test pod)"
    return {container["image"] for _, spec in specs for container in spec["containers"]}


def test_a_repository_and_tag_of_the_users_registry_run_in_every_pod() -> None:
    images = rendered_images("--set", f"image.repository={REGISTRY}/plinth-serving", "--set", "image.tag=4f2a9c1d0b3e")
    assert images == {f"{REGISTRY}/plinth-serving:4f2a9c1d0b3e"}


def test_the_recorded_digest_renders_as_make_images_prints_it() -> None:
    record = Record(registry=REGISTRY, revision="4f2a" * 10, digests={SERVING.name: DIGEST})
    images = rendered_images("--set", f"image.repository={REGISTRY}/{SERVING.name}", "--set", f"image.digest={DIGEST}")
    assert images == {record.pinned(SERVING)}


@pytest.mark.parametrize(
    ("key", "value"),
    [("image.tag", "latest"), ("image.tag", "v1:2"), ("image.digest", "sha256:ABC"), ("image.repository", "")],
)
def test_the_schema_refuses_a_moving_or_malformed_reference(key: str, value: str) -> None:
    result = render_with("--set", f"{key}={value}")
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr


def test_every_module_the_chart_runs_in_the_serving_image_is_copied_into_it() -> None:
    """`pip install .` in serving/Dockerfile installs only the folders it copies: a module left out fails at start."""
    dockerfile = (ROOT / "serving" / "Dockerfile").read_text()
    copied = {line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")}
    modules = set()
    for value_set in ("default", "experiment", "feedback-store"):
        for _, spec in pod_specs(render(value_set)):
            for container in spec["containers"]:
                command = container.get("command", [])
                image = container["image"].split("@")[0].rsplit(":", 1)[0]
                if image.endswith("/plinth-serving") and command[:2] == ["python", "-m"]:
                    modules.add(command[2])
    assert {"serving.rollout", "serving.experiments", "serving.model_service.live_quality"} <= modules
    for module in modules:
        folder = "/".join(module.split(".")[:2])
        assert folder in copied, f"{module} runs in the serving image but serving/Dockerfile does not COPY {folder}"
