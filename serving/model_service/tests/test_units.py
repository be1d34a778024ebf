"""Plain-Python units: settings parsing, the drift window, the request guard's chaos knobs."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from components.common import profile as reference
from components.ingest.core import load_source
from serving.model_service import settings
from serving.model_service.guard import PredictGuard
from serving.model_service.monitor import InputMonitor


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return load_source("sklearn:breast_cancer")


def test_settings_defaults_and_version_override() -> None:
    parsed = settings.Settings.from_env({settings.ENV_TRACKING_URI: "sqlite:///x.db"})
    assert (parsed.model_name, parsed.model_alias, parsed.model_version) == (
        "plinth-classifier",
        "champion",
        None,
    )
    assert parsed.model_selector == "models:/plinth-classifier@champion"
    assert (parsed.chaos_error_rate, parsed.chaos_latency_ms) == (0.0, 0.0)
    pinned = settings.Settings.from_env({settings.ENV_MODEL_VERSION: "7"})
    assert pinned.model_selector == "models:/plinth-classifier/7"
    assert pinned.tracking_uri.startswith("sqlite:///")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (settings.ENV_CHAOS_ERROR_RATE, "1.5"),
        (settings.ENV_WORKERS, "many"),
        (settings.ENV_MAX_BODY_BYTES, "1"),
    ],
)
def test_settings_reject_bad_values_by_name(name: str, value: str) -> None:
    with pytest.raises(settings.SettingsError, match=name):
        settings.Settings.from_env({name: value})


def test_window_psi_matches_profile_psi(frame: pd.DataFrame) -> None:
    profile = reference.build_profile(frame, "target")
    monitor = InputMonitor(profile, window=100)
    features = frame.drop(columns=["target"]).to_numpy(dtype=float)
    shifted = features[:150] * 1.5
    monitor.observe(shifted[:60], np.full(60, 0.3))
    monitor.observe(shifted[60:], np.full(90, 0.7))
    window = shifted[-100:]
    for index, name in enumerate(profile.feature_names):
        stats = profile.features[name]
        expected = reference.psi(stats.bin_shares, reference.bin_counts(window[:, index], stats.bin_edges))
        assert monitor.psi()[index] == pytest.approx(expected, rel=1e-9)
        gauge = REGISTRY.get_sample_value("plinth_input_drift_psi", {"feature": name})
        assert gauge == pytest.approx(expected, rel=1e-9)
    assert monitor.filled == 100


def test_drift_is_low_on_reference_data_and_high_when_shifted(frame: pd.DataFrame) -> None:
    profile = reference.build_profile(frame, "target")
    features = frame.drop(columns=["target"]).to_numpy(dtype=float)
    calm, shifted = InputMonitor(profile, window=500), InputMonitor(profile, window=500)
    calm.observe(features, np.full(len(features), 0.5))
    shifted.observe(features + features.std(axis=0) * 2, np.full(len(features), 0.5))
    assert calm.psi().max() < 0.1
    assert shifted.psi().min() > 0.5


def _guarded(**options: float) -> TestClient:
    async def echo(_request: object) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/predict", echo, methods=["POST"])])
    return TestClient(PredictGuard(app, route="/predict", **options))  # type: ignore[arg-type]


def test_chaos_is_off_by_default_and_injects_errors_when_set() -> None:
    assert _guarded().post("/predict", json={}).status_code == 200
    failing = _guarded(chaos_error_rate=1.0).post("/predict", json={})
    assert failing.status_code == 500
    assert "chaos" in failing.json()["error"]


def test_chaos_latency_delays_the_answer() -> None:
    client = _guarded(chaos_latency_ms=150)
    start = time.monotonic()
    assert client.post("/predict", json={}).status_code == 200
    assert time.monotonic() - start >= 0.15


def test_streamed_body_over_the_limit_is_413() -> None:
    def chunks() -> object:
        yield b"[" * 1024
        yield b"[" * 1024

    response = _guarded(max_body_bytes=1500).post(
        "/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
