import json
from datetime import UTC, datetime

import pytest

from pipelines.triggers.alerts import PayloadError, parse, to_trigger
from tests.triggers.conftest import alert, body


def test_firing_drift_alerts_become_one_trigger_with_their_values():
    alerts = parse(body(alert("radius"), alert("area", value="0.61")))
    trigger = to_trigger(alerts, "input_drift")
    assert trigger.kind == "input_drift"
    assert trigger.values == {"psi.radius": 0.4, "psi.area": 0.61}
    assert trigger.reason == "PlinthInputDrift firing for feature(s) area, radius on track stable"
    assert trigger.at == datetime(2026, 11, 23, 12, 0, 0, 123000, tzinfo=UTC)
    assert alerts[0].fingerprint == "fp-radius"


def quality_alert(version: str, value: str, **labels: str) -> dict:
    return {
        **alert("-", value=value),
        "labels": {"alertname": "PlinthLiveQualityLow", "model": "m", "model_version": version, **labels},
        "fingerprint": f"fp-v{version}",
    }


def test_a_live_quality_alert_becomes_a_performance_decay_trigger_keyed_by_its_metric():
    trigger = to_trigger(parse(body(quality_alert("3", "0.61", metric="accuracy"))), "performance_decay")
    assert trigger.kind == "performance_decay"
    assert trigger.values == {"accuracy": 0.61}
    assert trigger.reason == "PlinthLiveQualityLow firing for version(s) 3 (accuracy 0.61)"


def test_a_live_quality_alert_without_a_metric_label_records_live_quality():
    named_in_annotation = quality_alert("3", "4.5")
    named_in_annotation["annotations"]["metric"] = "mae"
    assert to_trigger(parse(body(named_in_annotation)), "performance_decay").values == {"mae": 4.5}
    unnamed = to_trigger(parse(body(quality_alert("3", "0.7"))), "performance_decay")
    assert unnamed.values == {"live_quality": 0.7}


def test_low_quality_on_two_versions_keeps_both_values():
    alerts = parse(body(quality_alert("3", "0.61", metric="accuracy"), quality_alert("4", "0.55", metric="accuracy")))
    trigger = to_trigger(alerts, "performance_decay")
    assert trigger.values == {"accuracy.v3": 0.61, "accuracy.v4": 0.55}
    assert trigger.reason == "PlinthLiveQualityLow firing for version(s) 3, 4 (accuracy.v3 0.61, accuracy.v4 0.55)"


def test_an_alert_without_a_usable_value_has_none():
    trigger = to_trigger(parse(body(alert("radius", value="NaN"), alert("area", value="high"))), "input_drift")
    assert trigger.values == {}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "body: not JSON"),
        (body(version="3"), 'version: expected "4"'),
        (json.dumps({"version": "4"}).encode(), "alerts: missing"),
        (body({**alert("x"), "status": "pending"}), "alerts[0].status: expected firing or resolved"),
        (body(alert("x"), {**alert("y"), "labels": {"feature": "y"}}), "alerts[1].labels.alertname: missing"),
        (body({**alert("x"), "startsAt": "yesterday"}), "alerts[0].startsAt: not an RFC 3339 time"),
        (body({**alert("x"), "labels": ["alertname"]}), "alerts[0].labels: expected dict, got list"),
    ],
)
def test_bad_payloads_name_the_field(payload: bytes, message: str):
    with pytest.raises(PayloadError) as error:
        parse(payload)
    assert str(error.value).startswith(message)
