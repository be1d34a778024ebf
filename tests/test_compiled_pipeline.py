"""The committed pipeline YAML: fresh, and scheduled as intended on CPU and GPU node pools."""

from pathlib import Path

import pytest
import yaml

from components import COMPONENT_IMAGE
from pipelines.compile import COMPILED_DIR, compile_all

# The XGBoost and PyTorch steps, and their search shards (search-2, search-3).
GPU_STEPS = {"train-torch", "train-xgboost", "search-2", "search-3"}


def load(variant: str) -> tuple[dict, dict]:
    spec, platform = yaml.safe_load_all((COMPILED_DIR / f"training-{variant}.yaml").read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def executors_by_task(spec: dict) -> dict[str, dict]:
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    resolved = {}
    for name, task in tasks.items():
        executor = spec["components"][task["componentRef"]["name"]].get("executorLabel")
        if executor:
            resolved[name] = spec["deploymentSpec"]["executors"][executor]["container"]
    return resolved


def test_compiled_files_are_fresh(tmp_path: Path):
    for path in compile_all(tmp_path):
        committed = COMPILED_DIR / path.name
        assert committed.read_text() == path.read_text(), f"{committed} is stale: run `make compile`"


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_every_step_runs_the_component_image_with_limits(variant):
    spec, _ = load(variant)
    containers = executors_by_task(spec)
    assert len(containers) == 18  # 4 families: search, train, evaluate each; search-shards and 6 more
    for name, container in containers.items():
        assert container["image"] == COMPONENT_IMAGE, name
        assert "pip install" not in " ".join(container["command"]), name
        resources = container["resources"]
        for key in ("resourceCpuLimit", "resourceMemoryLimit", "resourceCpuRequest", "resourceMemoryRequest"):
            assert resources[key], (name, key)


def test_gpu_variant_puts_torch_and_xgboost_on_the_gpu_pool():
    spec, platform = load("gpu")
    containers = executors_by_task(spec)
    for name in GPU_STEPS:
        accelerator = containers[name]["resources"]["accelerator"]
        assert accelerator["resourceType"] == "nvidia.com/gpu"
        assert accelerator["resourceCount"] == "1"
        executor = platform[f"exec-{name}"]
        assert executor["nodeSelector"]["labels"] == {"plinth.dev/node-pool": "gpu"}
        assert executor["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
    for name in set(containers) - GPU_STEPS:
        assert "accelerator" not in containers[name]["resources"], name
        assert platform[f"exec-{name}"]["nodeSelector"]["labels"] == {"plinth.dev/node-pool": "cpu"}


def test_cpu_variant_has_no_accelerator_and_uses_the_cpu_pool():
    spec, platform = load("cpu")
    for name, container in executors_by_task(spec).items():
        assert "accelerator" not in container["resources"], name
        assert platform[f"exec-{name}"]["nodeSelector"]["labels"] == {"plinth.dev/node-pool": "cpu"}
        assert "tolerations" not in platform[f"exec-{name}"]


def test_node_pool_settings_are_configurable(tmp_path: Path):
    compile_all(tmp_path, node_pool_label="cloud.example.com/pool", gpu_pool="a100", gpu_taint_key="gpu")
    _, platform = yaml.safe_load_all((tmp_path / "training-gpu.yaml").read_text())
    executor = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train-torch"]
    assert executor["nodeSelector"]["labels"] == {"cloud.example.com/pool": "a100"}
    assert executor["tolerations"][0]["key"] == "gpu"


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_no_step_gets_the_signing_key_and_register_gets_the_signers_url(variant):
    """The key lives with the signer service (manifests/platform/signer); tests/signing holds the attack tests."""
    spec, platform = load(variant)
    assert "plinth-signing-key" not in yaml.safe_dump(platform)
    assert "PLINTH_SIGNING_KEY" not in yaml.safe_dump(spec), "no key material or path in the pipeline spec"
    env = executors_by_task(spec)["register"].get("env", [])
    assert {"name": "PLINTH_SIGNER_URL", "value": "http://plinth-signer.plinth-signing.svc:8080"} in env


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_only_the_steps_that_load_models_run_with_pickles_disallowed(variant):
    spec, _ = load(variant)
    disallowed = {
        name
        for name, container in executors_by_task(spec).items()
        if {"name": "MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "value": "false"} in container.get("env", [])
    }
    assert disallowed == {"evaluate", "evaluate-2", "evaluate-3", "evaluate-4", "gate", "register"}
