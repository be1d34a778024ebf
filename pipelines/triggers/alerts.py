"""Alertmanager's webhook payload (version "4") → validated alerts → at most one trigger per kind and notification.

Two of the chart's alerts map to trigger kinds. `PlinthInputDrift` (on `plinth_input_drift_psi`) becomes an
`input_drift` trigger whose values are the PSI per feature (`psi.<feature>`). `PlinthLiveQualityLow` (on the
model service's live quality from ground truth, `plinth_live_correct` / `plinth_live_absolute_error`)
becomes a `performance_decay` trigger whose value is named by the alert's `metric` label or annotation
(`accuracy`, `mae`), else `live_quality`, with `.v<model_version>` appended when one notification holds
alerts for more than one version. Each value is read from the alert's `value` annotation
(`value: "{{ $value }}"` in the rule) when it has one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipelines.triggers.policy import Trigger

ALERT_KINDS = {"PlinthInputDrift": "input_drift", "PlinthLiveQualityLow": "performance_decay"}
# The value name of a performance_decay alert that does not say which metric fell.
LIVE_QUALITY = "live_quality"
FIRING, RESOLVED = "firing", "resolved"


class PayloadError(ValueError):
    """The payload is not an Alertmanager webhook notification; the message names the field."""


@dataclass(frozen=True)
class Alert:
    """One alert of a notification, as far as the triggers need it."""

    status: str
    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    fingerprint: str


def _field(obj: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise PayloadError(f"{where}{key}: missing")
    value = obj[key]
    if not isinstance(value, kind):
        raise PayloadError(f"{where}{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _time(value: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise PayloadError(f"{where}startsAt: not an RFC 3339 time: {value[:40]!r}") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse(body: bytes) -> list[Alert]:
    """Return the alerts of a webhook body.

    Raises:
        PayloadError: malformed JSON, another payload version, or an alert without a required field.
    """
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PayloadError(f"body: not JSON ({error})") from error
    if _field(payload, "version", str, "") != "4":
        raise PayloadError(f'version: expected "4" (Alertmanager webhook), got {payload["version"]!r}')
    alerts = []
    for index, raw in enumerate(_field(payload, "alerts", list, "")):
        where = f"alerts[{index}]."
        status = _field(raw, "status", str, where)
        if status not in (FIRING, RESOLVED):
            raise PayloadError(f"{where}status: expected firing or resolved, got {status!r}")
        labels = _field(raw, "labels", dict, where)
        alerts.append(
            Alert(
                status=status,
                name=_field(labels, "alertname", str, f"{where}labels."),
                labels={str(k): str(v) for k, v in labels.items()},
                annotations={str(k): str(v) for k, v in (raw.get("annotations") or {}).items()},
                starts_at=_time(_field(raw, "startsAt", str, where), where),
                fingerprint=str(raw.get("fingerprint", "")),
            )
        )
    return alerts


def _value(alert: Alert) -> float | None:
    try:
        value = float(alert.annotations.get("value", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _drift(alerts: list[Alert]) -> tuple[str, dict[str, float]]:
    features = sorted({alert.labels.get("feature", "?") for alert in alerts})
    tracks = sorted({alert.labels["track"] for alert in alerts if "track" in alert.labels})
    values = {f"psi.{alert.labels.get('feature', '?')}": v for alert in alerts if (v := _value(alert)) is not None}
    where = f" on track {', '.join(tracks)}" if tracks else ""
    return f"for feature(s) {', '.join(features)}{where}", values


def _metric(alert: Alert) -> str:
    return alert.labels.get("metric") or alert.annotations.get("metric") or LIVE_QUALITY


def _decay(alerts: list[Alert]) -> tuple[str, dict[str, float]]:
    versions = sorted({alert.labels["model_version"] for alert in alerts if "model_version" in alert.labels})
    several = len(versions) > 1
    values = {
        f"{_metric(alert)}.v{alert.labels.get('model_version', '?')}" if several else _metric(alert): v
        for alert in alerts
        if (v := _value(alert)) is not None
    }
    where = f"for version(s) {', '.join(versions)}" if versions else ""
    shown = f"({', '.join(f'{name} {value:.4g}' for name, value in sorted(values.items()))})" if values else ""
    return " ".join(part for part in (where, shown) if part), values


def to_trigger(alerts: list[Alert], kind: str) -> Trigger:
    """Return one trigger of `kind` for alerts of that kind: the reason says where it fired, values how badly."""
    where, values = _decay(alerts) if kind == "performance_decay" else _drift(alerts)
    names = sorted({alert.name for alert in alerts})
    reason = " ".join(part for part in (", ".join(names), alerts[0].status, where) if part)
    return Trigger(kind, reason, values, min(alert.starts_at for alert in alerts))
