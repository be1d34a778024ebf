"""Plain-Python units: settings, columns from signatures, the drift window, output metrics, the guard."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, Schema
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from components.common import profile as reference
from components.common.features import prepare_features
from components.common.task import Task
from components.ingest.core import load_source
from serving.model_service import settings
from serving.model_service.columns import Batch, Column, FrameBuilder, read_columns
from serving.model_service.drift import InputMonitor
from serving.model_service.guard import PredictGuard
from serving.model_service.monitor import MAX_CLASS_LABELS, OTHER_CLASS, OutputMonitor
from serving.model_service.predictor import ServedTask
from serving.model_service.schema import request_model
from serving.rollout.edges.sample_rows import records


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    return load_source("sklearn:breast_cancer")


@pytest.fixture(scope="module")
def churn() -> pd.DataFrame:
    return load_source("synthetic:churn")


def batch_of(frame: pd.DataFrame, profile: reference.ReferenceProfile) -> tuple[list[Column], Batch]:
    """Return the profile's columns and `frame` as the service's typed batch."""
    features = prepare_features(frame, profile)
    columns = [Column(n, "double" if s.is_numeric else "string", s.optional, s) for n, s in profile.features.items()]
    instances = [dict(zip(features.columns, row, strict=True)) for row in features.itertuples(index=False)]
    return columns, FrameBuilder(columns).build(instances)


def test_settings_defaults_task_and_version_override() -> None:
    parsed = settings.Settings.from_env({settings.ENV_TRACKING_URI: "sqlite:///x.db"})
    assert (parsed.model_name, parsed.model_alias, parsed.model_version, parsed.task) == (
        "plinth-classifier",
        "champion",
        None,
        None,
    )
    assert parsed.model_selector == "models:/plinth-classifier@champion"
    assert (parsed.chaos_error_rate, parsed.chaos_latency_ms) == (0.0, 0.0)
    pinned = settings.Settings.from_env({settings.ENV_MODEL_VERSION: "7", settings.ENV_TASK: "multiclass"})
    assert (pinned.model_selector, pinned.task) == ("models:/plinth-classifier/7", "multiclass")
    assert pinned.tracking_uri.startswith("sqlite:///")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (settings.ENV_CHAOS_ERROR_RATE, "1.5"),
        (settings.ENV_WORKERS, "many"),
        (settings.ENV_MAX_BODY_BYTES, "1"),
        (settings.ENV_TASK, "classification"),
    ],
)
def test_settings_reject_bad_values_by_name(name: str, value: str) -> None:
    with pytest.raises(settings.SettingsError, match=name):
        settings.Settings.from_env({name: value})


@pytest.mark.parametrize("kind", ["datetime", "binary"])
def test_unsupported_column_type_is_named(kind: str) -> None:
    signature = ModelSignature(inputs=Schema([ColSpec("double", "age"), ColSpec(kind, "seen_at")]))
    with pytest.raises(ValueError, match=f"'seen_at' has type {kind}"):
        read_columns(signature, None)


def test_signature_types_and_optional_columns_are_read(churn: pd.DataFrame) -> None:
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", "age", required=False), ColSpec("long", "calls"), ColSpec("boolean", "card")])
    )
    columns = read_columns(signature, None)
    assert [(c.name, c.type, c.optional, c.dtype) for c in columns] == [
        ("age", "double", True, "float64"),
        ("calls", "long", False, "int64"),
        ("card", "boolean", False, "bool"),
    ]
    assert columns[1].bounds == (-(2**63), 2**63 - 1)


def test_request_model_is_strict_and_reads_integral_numbers_as_integers() -> None:
    columns = [Column("age", "double", True), Column("calls", "long"), Column("plan", "string", True)]
    model = request_model(columns, 10)
    parsed = model.model_validate_json('{"columns": ["age", "calls", "plan"], "data": [[null, 3.0, "basic"]]}')
    assert parsed.instances == [{"age": None, "calls": 3, "plan": "basic"}]  # type: ignore[attr-defined]
    for bad in ("[1, 3, 7]", '[true, 3, "a"]', '["1", 3, "a"]', '[1, 3.5, "a"]', '[1, null, "a"]'):
        with pytest.raises(ValueError, match="validation error"):
            model.model_validate_json(f'{{"columns": ["age", "calls", "plan"], "data": [{bad}]}}')
    with pytest.raises(ValueError, match="signature order"):
        model.model_validate_json('{"columns": ["calls", "age", "plan"], "data": [[3, 1.0, "a"]]}')


def test_frame_is_typed_as_training_typed_it(churn: pd.DataFrame) -> None:
    profile = reference.build_profile(churn, "churned")
    features = prepare_features(churn, profile)
    columns = [
        Column("age", "double", True), Column("plan", "string", True), Column("has_card", "boolean", True),
        Column("support_calls", "long"),
    ]  # fmt: skip
    frame = FrameBuilder(columns).build(records(features[[c.name for c in columns]])).frame
    assert frame.dtypes.astype(str).to_dict() == {
        "age": "float64",
        "plan": "object",
        "has_card": "object",
        "support_calls": "int64",
    }
    np.testing.assert_array_equal(frame["age"].isna(), features["age"].isna())


def test_window_psi_matches_profile_psi_for_every_kind(churn: pd.DataFrame) -> None:
    profile = reference.build_profile(churn, "churned")
    shifted = churn.assign(age=churn["age"] * 1.5, region=churn["region"].where(churn.index % 3 > 0, "islands"))
    columns, _ = batch_of(shifted.iloc[:1], profile)
    monitor = InputMonitor(columns, profile, window=300, min_requests=1)  # the PSI's arithmetic, two batches
    monitor.observe(batch_of(shifted.iloc[:120], profile)[1])
    monitor.observe(batch_of(shifted.iloc[120:400], profile)[1])
    window = prepare_features(shifted.iloc[100:400], profile)
    for index, name in enumerate(profile.feature_names):
        expected = reference.feature_psi(profile.features[name], window[name].to_numpy())
        assert monitor.psi()[index] == pytest.approx(expected, rel=1e-9), name
        assert REGISTRY.get_sample_value("plinth_input_drift_psi", {"feature": name}) == pytest.approx(expected)
    assert monitor.filled == 300


def test_drift_is_low_on_reference_data_and_high_when_shifted(cancer: pd.DataFrame) -> None:
    profile = reference.build_profile(cancer, "target")
    columns, calm_batch = batch_of(cancer, profile)
    shifted_frame = cancer.drop(columns=["target"])
    _, shifted_batch = batch_of((shifted_frame + shifted_frame.std() * 2).assign(target=0), profile)
    calm, shifted = InputMonitor(columns, profile, 500), InputMonitor(columns, profile, 500)
    calm.observe(calm_batch)
    shifted.observe(shifted_batch)
    assert calm.psi().max() < 0.1
    assert shifted.psi().min() > 0.5


def test_drift_gauge_is_published_once_a_fiftieth_of_the_window_arrived(cancer: pd.DataFrame) -> None:
    profile = reference.build_profile(cancer, "target")
    name = profile.feature_names[0]
    monitor = InputMonitor(batch_of(cancer.iloc[:1], profile)[0], profile, window=500)  # every 10 rows

    def one_row(index: int) -> float:
        monitor.observe(batch_of(cancer.iloc[index : index + 1], profile)[1])
        return float(monitor.psi()[0])

    def gauge() -> float | None:
        return REGISTRY.get_sample_value("plinth_input_drift_psi", {"feature": name})

    scores = [one_row(index) for index in range(61)]
    assert scores[60] != scores[59]  # every row moves the score...
    assert gauge() == pytest.approx(scores[59])  # ...the gauge only at 50 and 60 rows
    scores += [one_row(index) for index in range(61, 70)]
    assert gauge() == pytest.approx(scores[69])


def test_labels_without_known_classes_are_capped() -> None:
    monitor = OutputMonitor(ServedTask("multiclass"))
    labels = np.array([f"c{i}" for i in range(MAX_CLASS_LABELS + 5)], dtype=object)
    before = REGISTRY.get_sample_value("plinth_predicted_class_total", {"class": OTHER_CLASS}) or 0.0
    monitor.observe(labels)
    assert REGISTRY.get_sample_value("plinth_predicted_class_total", {"class": OTHER_CLASS}) == before + 5
    assert len(monitor.known) == MAX_CLASS_LABELS + 1


def test_known_classes_are_the_only_labels() -> None:
    monitor = OutputMonitor(ServedTask.of(Task("binary", ("no", "yes"))))
    before = REGISTRY.get_sample_value("plinth_predicted_class_total", {"class": "yes"}) or 0.0
    monitor.observe(np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]]))
    assert REGISTRY.get_sample_value("plinth_predicted_class_total", {"class": "yes"}) == before + 2
    assert REGISTRY.get_sample_value("plinth_prediction_probability_count", {"class": "no"}) is None


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


def test_a_list_shaped_error_gets_the_published_shape() -> None:
    """BentoML answers an InvalidArgument raised in the API as `[{"error": ...}]`; clients get the object."""

    async def refuse(_request: object) -> JSONResponse:
        return JSONResponse([{"error": "the model cannot score these instances"}], status_code=400)

    app = Starlette(routes=[Route("/predict", refuse, methods=["POST"])])
    response = TestClient(PredictGuard(app)).post("/predict", json={})
    assert response.status_code == 400
    assert response.json() == {"error": "the model cannot score these instances"}
    assert int(response.headers["content-length"]) == len(response.content)


def test_a_repeating_failure_is_said_once_a_minute_with_its_count() -> None:
    from serving.model_service.throttle import ThrottledFailures

    failures = ThrottledFailures(every_s=3600.0)
    assert failures.failed() == 1  # the first one is said at once
    assert [failures.failed() for _ in range(4)] == [None] * 4
    failures.warned_at -= 3600.0  # an hour later
    assert failures.failed() == 5  # the four held back, and this one
