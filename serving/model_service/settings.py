"""Runtime configuration of the model service, read from environment variables named by constants.

The Helm chart, `make serve` and the rollout drills set these variables; nothing else configures the
service, so one table in the README describes every knob.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from components.common import loaders, signing
from components.common.duration import parse_duration
from components.common.state import local_tracking_uri, plinth_home
from components.common.task import KINDS
from serving.model_service import clients

ENV_MODEL_NAME = "PLINTH_MODEL_NAME"
ENV_MODEL_ALIAS = "PLINTH_MODEL_ALIAS"
ENV_MODEL_VERSION = "PLINTH_MODEL_VERSION"
ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
ENV_REGISTRY_URI = "MLFLOW_REGISTRY_URI"
ENV_PORT = "PORT"
ENV_WORKERS = "PLINTH_WORKERS"
ENV_MAX_BODY_BYTES = "PLINTH_MAX_BODY_BYTES"
ENV_MAX_INSTANCES = "PLINTH_MAX_INSTANCES"
ENV_DRIFT_WINDOW = "PLINTH_DRIFT_WINDOW"
ENV_TIMEOUT_S = "PLINTH_TIMEOUT_S"
ENV_MAX_CONCURRENCY = "PLINTH_MAX_CONCURRENCY"
# Ground-truth feedback: `off` stores nothing and answers /feedback 404. The prediction store is ONE setting
# for every process that reads or writes it (the services, the live-quality exporter): an SQLite path or a
# postgresql:// URL; predictions older than the age bound are late and purged.
ENV_FEEDBACK = "PLINTH_FEEDBACK"
ENV_PREDICTION_STORE = "PLINTH_PREDICTION_STORE"
ENV_FEEDBACK_MAX_AGE = "PLINTH_FEEDBACK_MAX_AGE"
# Predictions queued per worker while the store is slow or down; past it the oldest are dropped (counted).
ENV_PREDICTION_STORE_BUFFER = "PLINTH_PREDICTION_STORE_BUFFER"
DEFAULT_FEEDBACK_MAX_AGE_S = 30 * 86_400.0
# Who may label (`clients.py`: bearer tokens from a Secret, as a variable or a mounted file) and how fast:
# labels a second per client, and how many it may send at once.
ENV_FEEDBACK_TOKENS = clients.ENV_FEEDBACK_TOKENS
ENV_FEEDBACK_TOKENS_FILE = clients.ENV_FEEDBACK_TOKENS_FILE
ENV_FEEDBACK_RATE = "PLINTH_FEEDBACK_RATE"
ENV_FEEDBACK_BURST = "PLINTH_FEEDBACK_BURST"
# No single request fills the drift window or the prediction log (`drift.py`, `recorder.py`): rows one request
# adds to each, and how many distinct requests the drift window must span before its PSI is published.
ENV_DRIFT_ROWS_PER_REQUEST = "PLINTH_DRIFT_ROWS_PER_REQUEST"
ENV_DRIFT_MIN_REQUESTS = "PLINTH_DRIFT_MIN_REQUESTS"
ENV_LOG_ROWS_PER_REQUEST = "PLINTH_LOG_ROWS_PER_REQUEST"
# The payload archive (`archive.py`): a directory or an fsspec URL (s3://, gs://, abfs://) that every prediction
# and label is written to as Parquet; empty or `off`: no archive. Unset: `$PLINTH_HOME/payloads` (one machine;
# the chart always sets it).
ENV_PAYLOAD_ARCHIVE = "PLINTH_PAYLOAD_ARCHIVE"
# The header the local rollout router marks a mirrored copy of live traffic with (shadow phase); the service
# counts such requests apart. A request header, not an environment variable: it lives here so the router and
# the service share one name without the router importing the service's metrics.
MIRROR_HEADER = "x-plinth-mirror"
# The task of a model that does not say (no plinth metadata, no `plinth.task` registry tag).
ENV_TASK = "PLINTH_TASK"
# The public key (PEM) that model files are verified with, and whether an unsigned model is refused.
ENV_VERIFY_KEY = signing.ENV_VERIFY_KEY
ENV_REQUIRE_SIGNATURE = signing.ENV_REQUIRE_SIGNATURE
# Loaders beyond plinth's own that may run, and models allowed whatever their loader (`loaders.py`).
ENV_ALLOWED_LOADERS = loaders.ENV_ALLOWED_LOADERS
ENV_ALLOWED_FOREIGN_MODELS = loaders.ENV_ALLOWED_FOREIGN_MODELS
# Explanations (`explain.py`): `off` removes POST /explain; at most this many rows per explain request.
ENV_EXPLAIN = "PLINTH_EXPLAIN"
ENV_EXPLAIN_MAX_ROWS = "PLINTH_EXPLAIN_MAX_ROWS"
# Chaos knobs for rollout drills: both off unless set, never set them for real traffic.
ENV_CHAOS_ERROR_RATE = "PLINTH_CHAOS_ERROR_RATE"
ENV_CHAOS_LATENCY_MS = "PLINTH_CHAOS_LATENCY_MS"

DEFAULT_MODEL_NAME = "plinth-classifier"
DEFAULT_MODEL_ALIAS = "champion"
DEFAULT_PORT = 3000
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus() -> int:
    """Return the CPUs this process may use: its affinity, capped by a cgroup v2 quota (a pod's limit)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, int(float(quota) / float(period))))


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use; the message names it."""


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as error:
        raise SettingsError(f"{name}={raw!r} is not a number") from error
    if not low <= value <= high:
        raise SettingsError(f"{name}={raw!r} must lie between {low:g} and {high:g}")
    return value


def _duration(env: Mapping[str, str], name: str, default: float) -> float:
    """Read seconds (`0.5`, `90`) or a whole number with s/m/h/d (`30m`, `1d`) as seconds."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        try:
            seconds = parse_duration(raw).total_seconds()
        except ValueError as error:
            raise SettingsError(f"{name}={raw!r}: expected seconds or a number with s/m/h/d, e.g. 6h") from error
    if not 0 <= seconds <= 365 * 86400:
        raise SettingsError(f"{name}={raw!r} must lie between 0 seconds and 365 days")
    return seconds


def _switch(env: Mapping[str, str], name: str) -> bool:
    """Read an on/off switch that is on unless set to off/false/0."""
    raw = env.get(name, "").strip().lower()
    if raw not in ("", "on", "off", "true", "false", "1", "0"):
        raise SettingsError(f"{name}={raw!r} must be on or off")
    return raw not in ("off", "false", "0")


def prediction_store(env: Mapping[str, str] | None = None) -> str:
    """Return the prediction store setting: PLINTH_PREDICTION_STORE, else `$PLINTH_HOME/predictions.sqlite`."""
    env = os.environ if env is None else env
    raw = env.get(ENV_PREDICTION_STORE, "").strip()
    if raw and not raw.startswith(("postgresql://", "postgres://", "postgresql+", "sqlite:")) and "://" in raw:
        raise SettingsError(
            f"{ENV_PREDICTION_STORE}: expected an SQLite path or a postgresql:// URL, got {raw.split('://')[0]}://..."
        )
    return raw or str(plinth_home() / "predictions.sqlite")


def payload_archive(env: Mapping[str, str] | None = None) -> str:
    """Return the payload archive setting ("" = off): PLINTH_PAYLOAD_ARCHIVE, else `$PLINTH_HOME/payloads`."""
    env = os.environ if env is None else env
    if ENV_PAYLOAD_ARCHIVE not in env:
        return str(plinth_home() / "payloads")
    raw = env[ENV_PAYLOAD_ARCHIVE].strip()
    if raw.lower() in ("", "off"):
        return ""
    from components.ingest.read import IngestError, check_url

    try:
        check_url(raw)
    except IngestError as error:
        raise SettingsError(f"{ENV_PAYLOAD_ARCHIVE}: {error}") from None
    return raw


def feedback_max_age_s(env: Mapping[str, str] | None = None) -> float:
    """Return PLINTH_FEEDBACK_MAX_AGE in seconds (default 30 days)."""
    return _duration(os.environ if env is None else env, ENV_FEEDBACK_MAX_AGE, DEFAULT_FEEDBACK_MAX_AGE_S)


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment, validated once at start."""

    model_name: str = DEFAULT_MODEL_NAME
    model_alias: str = DEFAULT_MODEL_ALIAS
    model_version: str | None = None
    tracking_uri: str = ""
    registry_uri: str = ""
    workers: int = 1
    max_body_bytes: int = 1_048_576
    max_instances: int = 1000
    drift_window: int = 500
    timeout_s: float = 10.0
    max_concurrency: int = 256
    chaos_error_rate: float = 0.0
    chaos_latency_ms: float = 0.0
    task: str | None = None
    verify_key: Path | None = None
    require_signature: bool = False
    loader_policy: loaders.LoaderPolicy = field(default_factory=loaders.LoaderPolicy)
    feedback: bool = True
    prediction_store: str = "predictions.sqlite"
    prediction_store_buffer: int = 50_000
    feedback_max_age_s: float = DEFAULT_FEEDBACK_MAX_AGE_S
    payload_archive: str = ""
    feedback_clients: tuple[tuple[str, str], ...] = ()  # (client, SHA-256 of its token): never the tokens
    feedback_rate: float = 20.0
    feedback_burst: int = 200
    drift_rows_per_request: int = 10
    drift_min_requests: int = 50
    log_rows_per_request: int = 100
    explain: bool = True
    explain_max_rows: int = 20

    @property
    def model_selector(self) -> str:
        """Return what the environment asked for, as an MLflow URI (for messages)."""
        if self.model_version:
            return f"models:/{self.model_name}/{self.model_version}"
        return f"models:/{self.model_name}@{self.model_alias}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the settings from `env` (default: the process environment)."""
        env = os.environ if env is None else env
        tracking_uri = env.get(ENV_TRACKING_URI) or local_tracking_uri()
        task = env.get(ENV_TASK, "").strip() or None
        if task is not None and task not in KINDS:
            raise SettingsError(f"{ENV_TASK}={task!r} must be one of {', '.join(KINDS)}")
        registry_uri = env.get(ENV_REGISTRY_URI) or tracking_uri
        try:
            verify_key = signing.verify_key(registry_uri, env)
            require_signature = signing.signature_required(env)
            loader_policy = loaders.LoaderPolicy.from_env(env)
        except (signing.SigningError, ValueError) as error:
            raise SettingsError(str(error)) from error
        return cls(
            model_name=env.get(ENV_MODEL_NAME) or DEFAULT_MODEL_NAME,
            model_alias=env.get(ENV_MODEL_ALIAS) or DEFAULT_MODEL_ALIAS,
            model_version=env.get(ENV_MODEL_VERSION) or None,
            tracking_uri=tracking_uri,
            registry_uri=registry_uri,
            workers=int(_number(env, ENV_WORKERS, available_cpus(), 1, 64)),
            max_body_bytes=int(_number(env, ENV_MAX_BODY_BYTES, cls.max_body_bytes, 1024, 2**30)),
            max_instances=int(_number(env, ENV_MAX_INSTANCES, cls.max_instances, 1, 100_000)),
            drift_window=int(_number(env, ENV_DRIFT_WINDOW, cls.drift_window, 10, 1_000_000)),
            timeout_s=_number(env, ENV_TIMEOUT_S, cls.timeout_s, 0.01, 3600),
            max_concurrency=int(_number(env, ENV_MAX_CONCURRENCY, cls.max_concurrency, 1, 100_000)),
            chaos_error_rate=_number(env, ENV_CHAOS_ERROR_RATE, 0.0, 0.0, 1.0),
            chaos_latency_ms=_number(env, ENV_CHAOS_LATENCY_MS, 0.0, 0.0, 600_000),
            task=task,
            verify_key=verify_key,
            require_signature=require_signature,
            loader_policy=loader_policy,
            feedback=_switch(env, ENV_FEEDBACK),
            prediction_store=prediction_store(env),
            prediction_store_buffer=int(
                _number(env, ENV_PREDICTION_STORE_BUFFER, cls.prediction_store_buffer, 1, 10_000_000)
            ),
            feedback_max_age_s=_duration(env, ENV_FEEDBACK_MAX_AGE, cls.feedback_max_age_s),
            payload_archive=payload_archive(env),
            feedback_clients=_clients(env),
            feedback_rate=_number(env, ENV_FEEDBACK_RATE, cls.feedback_rate, 0.001, 100_000),
            feedback_burst=int(_number(env, ENV_FEEDBACK_BURST, cls.feedback_burst, 1, 1_000_000)),
            drift_rows_per_request=int(
                _number(env, ENV_DRIFT_ROWS_PER_REQUEST, cls.drift_rows_per_request, 1, 100_000)
            ),
            drift_min_requests=int(_number(env, ENV_DRIFT_MIN_REQUESTS, cls.drift_min_requests, 1, 1_000_000)),
            log_rows_per_request=int(_number(env, ENV_LOG_ROWS_PER_REQUEST, cls.log_rows_per_request, 1, 100_000)),
            explain=_switch(env, ENV_EXPLAIN),
            explain_max_rows=int(_number(env, ENV_EXPLAIN_MAX_ROWS, cls.explain_max_rows, 1, 1000)),
        )


def _clients(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Read the labelling clients (`clients.py`); a bad entry is a SettingsError naming the variable."""
    try:
        return clients.read_clients(env)
    except ValueError as error:
        raise SettingsError(str(error)) from None
