"""The pipelines as compiled: no step gets the signing key, only training's register step gets the signer's URL."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.common.signing import ENV_SIGNING_KEY
from components.register.core import ENV_SIGNER_URL
from pipelines.compile import compile_all
from pipelines.training.compute import ComputeTarget

KEY_SECRET = "plinth-signing-key"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return compile_all(tmp_path_factory.mktemp("compiled"))


def test_no_step_gets_the_key_secret_or_a_key_variable(compiled: list[Path]) -> None:
    for path in compiled:
        text = path.read_text()
        assert KEY_SECRET not in text, path.name
        assert ENV_SIGNING_KEY not in text, f"{path.name}: no key, key text or key path in any step"
        _, platform = yaml.safe_load_all(text)
        executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        secrets = {
            name: sorted(
                {binding["secretName"] for binding in executor.get("secretAsEnv", [])}
                | {binding["secretName"] for binding in executor.get("secretAsVolume", [])}
            )
            for name, executor in executors.items()
        }
        assert not [name for name, found in secrets.items() if KEY_SECRET in found]
        if path.name.startswith("training"):
            # The register step holds no Secret that a training step (running anyone's code) does not hold too.
            assert set(secrets["exec-register"]) <= set(secrets["exec-train-sklearn"]), secrets["exec-register"]


def test_the_register_step_gets_the_signers_url(compiled: list[Path]) -> None:
    assert sorted(path.name for path in compiled) == ["scoring-cpu.yaml", "training-cpu.yaml", "training-gpu.yaml"]
    for path in compiled:
        spec, _ = yaml.safe_load_all(path.read_text())
        executors = spec["deploymentSpec"]["executors"]
        if path.name.startswith("training"):
            register = executors["exec-register"]["container"].get("env", [])
            env = {entry["name"]: entry["value"] for entry in register}
            assert env[ENV_SIGNER_URL] == ComputeTarget(gpu=False).signer_url, path.name
        others = [name for name, executor in executors.items() if name != "exec-register"]
        for name in others:
            assert ENV_SIGNER_URL not in str(executors[name]["container"].get("env", [])), name
