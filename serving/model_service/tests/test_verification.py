"""What is served is what was registered: the service checks a version's files against their signature first.

Each model here is registered into a store of this module's own (so tampering with its files touches no
other test), through plinth's register step (signed, with the key made beside the store, which is also the
service's default public key) or, unsigned, straight into the registry as any other tool would.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from bentoml.exceptions import ServiceUnavailable
from mlflow import MlflowClient
from prometheus_client import REGISTRY

from components.common import signing
from serving.bench.demo_model import RegisteredModel, register_plinth_model, register_unsigned_copy
from serving.model_service import settings

from .conftest import Server, env_for, free_port, import_service, metric, scrape, serve_once

SERVICE_LOGGER = "plinth.model_service"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('signed') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def signed(store: str) -> RegisteredModel:
    return register_plinth_model(store, "plinth-signed", experiment="verification")


@pytest.fixture(scope="module")
def tampered(store: str) -> RegisteredModel:
    """A signed version whose stored model.skops had one byte changed after registration, in the store itself."""
    model = register_plinth_model(store, "plinth-tampered", experiment="verification")
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    stored = Path(client.get_model_version_download_uri(model.name, model.version).removeprefix("file://"))
    data = bytearray((stored / "model.skops").read_bytes())
    data[len(data) // 2] ^= 0x01
    (stored / "model.skops").write_bytes(bytes(data))
    return model


@pytest.fixture(scope="module")
def unsigned(signed: RegisteredModel) -> RegisteredModel:
    """The signed model's files registered again without plinth's register step: no signature on the version."""
    client = MlflowClient(tracking_uri=signed.tracking_uri, registry_uri=signed.tracking_uri)
    version = register_unsigned_copy(signed.tracking_uri, signed.name, signed.version, "notebook-unsigned")
    client.set_registered_model_alias("notebook-unsigned", "champion", version)
    return RegisteredModel(
        signed.tracking_uri, "notebook-unsigned", version, signed.model, signed.features, signed.task
    )


def verification(model: RegisteredModel, result: str) -> float:
    labels = {"model_name": model.name, "model_version": model.version, "result": result}
    return REGISTRY.get_sample_value("plinth_model_verification", labels) or 0.0


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == SERVICE_LOGGER and r.levelno == level]


def service_of(model: RegisteredModel, **env: str) -> Any:
    """Return an instance of the real service class, built and started (`__init__`) for `model` in-process.

    (Not under `to_asgi()`: BentoML registers its HTTP metrics once per process, and the session's client
    already did. The tampered case below goes through a real server, HTTP included.)
    """
    return import_service(env_for(model, **env)).ModelService.inner()


def test_a_signed_version_is_verified_and_served(signed: RegisteredModel, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, SERVICE_LOGGER):
        service = service_of(signed, **{settings.ENV_REQUIRE_SIGNATURE: "true"})
    assert service.__is_ready__()
    assert len(service.predict(signed.instances(0, 3))) == 3
    assert verification(signed, signing.VERIFIED) == 1
    assert not records(caplog, logging.WARNING)


def test_an_unsigned_version_is_refused_when_a_signature_is_required(
    unsigned: RegisteredModel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, SERVICE_LOGGER):
        service = service_of(unsigned, **{settings.ENV_REQUIRE_SIGNATURE: "true"})
    assert not service.__is_ready__()
    with pytest.raises(ServiceUnavailable, match="not signed and PLINTH_REQUIRE_SIGNATURE=true"):
        service.predict(unsigned.instances(0, 1))
    assert records(caplog, logging.ERROR) == [
        f"{unsigned.name} v{unsigned.version} refused: it is not signed and PLINTH_REQUIRE_SIGNATURE=true"
    ]
    assert verification(unsigned, signing.FAILED) == 1


def test_an_unsigned_version_is_served_with_a_warning_when_none_is_required(
    unsigned: RegisteredModel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, SERVICE_LOGGER):
        service = service_of(unsigned, **{settings.ENV_REQUIRE_SIGNATURE: "false"})
    assert service.__is_ready__()
    assert len(service.predict(unsigned.instances(0, 3))) == 3
    warning = f"{unsigned.name} v{unsigned.version} is not signed: its files are loaded unverified"
    assert warning in records(caplog, logging.WARNING)
    assert verification(unsigned, signing.UNVERIFIED) == 1


@pytest.mark.integration
def test_a_tampered_file_keeps_the_real_server_unready_and_says_why(tampered: RegisteredModel, tmp_path: Path) -> None:
    """`bentoml serve` on a version with one byte changed in the store: up, metered, never ready, one line."""
    server = Server(env_for(tampered, **{settings.ENV_REQUIRE_SIGNATURE: "true"}), tmp_path, free_port())
    line = f"{tampered.name} v{tampered.version} refused: model.skops differs from its signed digest"
    try:
        samples: dict[str, float] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not samples.get("plinth_model_verification"):
            assert server.alive(), server.log_tail()
            try:
                samples = scrape(server.url)
                samples["plinth_model_verification"] = metric(
                    samples, "plinth_model_verification", model_name=tampered.name,
                    model_version=tampered.version, result=signing.FAILED,
                )  # fmt: skip
            except httpx.HTTPError:
                time.sleep(0.2)
        assert samples.get("plinth_model_verification") == 1, server.log_tail()
        for _ in range(5):  # it stays up and unready
            assert httpx.get(f"{server.url}/livez", timeout=5).status_code == 200
            assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 503
            time.sleep(0.2)
        answer = httpx.post(f"{server.url}/predict", json={"instances": tampered.instances(0, 1)}, timeout=10)
        assert answer.status_code == 503
        # The Open Inference Protocol (V2) routes: not ready, and infer refused before its body is read.
        for path in ("/v2/health/ready", f"/v2/models/{tampered.name}/ready"):
            assert httpx.get(f"{server.url}{path}", timeout=5).status_code == 503
        infer = httpx.post(f"{server.url}/v2/models/{tampered.name}/infer", json={"inputs": []}, timeout=10)
        assert infer.status_code == 503
        assert "differs from its signed digest" in infer.json()["error"]
        log = server.log_path.read_text(errors="replace")
        assert sum(line in row for row in log.splitlines()) == 1, log[-3000:]
        assert "Traceback" not in log
        assert "cannot load model files" not in log  # nothing was loaded
    finally:
        server.stop()


@pytest.mark.integration
def test_make_serve_refuses_a_tampered_version_with_one_line(
    tampered: RegisteredModel, repo_root: Path, tmp_path: Path
) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "MLFLOW_TRACKING_URI": tampered.tracking_uri,
        "PLINTH_MODEL_NAME": tampered.name,
    }
    result = serve_once(env, repo_root)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"plinth: {tampered.name} v{tampered.version} refused: model.skops differs from its signed digest"
    )
