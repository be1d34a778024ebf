"""The chart runs the user's serving image: registry/repository and tag, or the digest `make images` recorded."""

from __future__ import annotations

import pytest
from k8s_tooling import load_documents, pod_specs, render_with

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
