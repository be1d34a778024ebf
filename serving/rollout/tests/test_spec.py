import re
from pathlib import Path

import pytest
import yaml

from serving.rollout.core.spec import ShadowSpec, SpecError, load_spec, parse_duration, parse_spec

SPEC_DIR = Path(__file__).resolve().parents[1]


def valid() -> dict:
    return yaml.safe_load((SPEC_DIR / "analysis.yaml").read_text())


@pytest.mark.parametrize("name", ["analysis.yaml", "analysis-fast.yaml", "analysis-bench.yaml", "analysis-ct.yaml"])
def test_shipped_specs_load(name):
    spec = load_spec(SPEC_DIR / name)
    assert spec.steps[-1] == 100
    assert {c.name for c in spec.enabled_checks} == {
        "success-rate",
        "latency-p99",
        "prediction-divergence",
        "input-drift",
    }


def test_the_default_spec_lists_the_optional_checks_off_with_their_bounds():
    """shadow-churn and estimated-accuracy are shipped parsed but off: they need the router's pairing / calibration."""
    optional = {c.name: c for c in load_spec(SPEC_DIR / "analysis.yaml").checks if not c.enabled}
    assert set(optional) == {"shadow-churn", "estimated-accuracy"}
    assert optional["shadow-churn"].max_churn == 0.05
    assert all(c.sequential and c.alpha == 0.01 for c in optional.values())
    assert optional["estimated-accuracy"].min_predictions == 100


def test_default_spec_values():
    spec = load_spec(SPEC_DIR / "analysis.yaml")
    assert spec.steps == (10, 25, 50, 100)
    assert spec.interval == 30.0
    assert spec.progress_deadline == 600.0
    latency = next(c for c in spec.checks if c.name == "latency-p99")
    # The ratio to the stable's p99 gave way to the anytime-valid comparison (README "Anytime-valid checks").
    assert (latency.max_seconds, latency.max_ratio_to_stable, latency.failure_limit) == (0.5, None, 2)
    assert (latency.alpha, latency.min_effect) == (0.01, 0.05)


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("30s", 30.0), ("10m", 600.0), ("1h", 3600.0), (2, 2.0)])
def test_parse_duration(text, seconds):
    assert parse_duration(text, "interval") == seconds


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(steps=[10, 5, 100]), "steps[1]"),
        (lambda d: d.update(steps=[10, 50]), "steps[1]"),
        (lambda d: d.update(steps=[]), "steps"),
        (lambda d: d.update(interval="soon"), "interval"),
        (lambda d: d.update(interval="0s"), "interval"),
        (lambda d: d.update(minRequests=0), "minRequests"),
        (lambda d: d.update(progressDeadline="1s"), "progressDeadline"),
        (lambda d: d.pop("checks"), "checks"),
        (lambda d: d["checks"][0].update(min=1.5), "checks[0].min"),
        (lambda d: d["checks"][0].update(min="high"), "checks[0].min"),
        (lambda d: d["checks"][1].pop("maxSeconds"), "checks[1].maxSeconds"),
        (lambda d: d["checks"][2].update(failureLimit=0), "checks[2].failureLimit"),
        (lambda d: d["checks"][3].update(name="accuracy"), "checks[3].name"),
        (lambda d: d["checks"][3].update(enabled="yes"), "checks[3].enabled"),
        (lambda d: d["checks"][0].update(maxSeconds=1), "checks[0].maxSeconds"),
        (lambda d: d["checks"].append({"name": "success-rate", "min": 0.9}), "checks[6].name"),
        (lambda d: d.update(stepz=[1]), "stepz"),
        (lambda d: d["checks"][2].update(minPredictions=0), "checks[2].minPredictions"),
        (lambda d: d["checks"][0].update(minPredictions=10), "checks[0].minPredictions"),
        (lambda d: d["checks"][3].update(minPredictions=-1), "checks[3].minPredictions"),
        (lambda d: d.update(shadow="yes"), "shadow"),
        (lambda d: d.update(shadow={"enabled": "no"}), "shadow.enabled"),
        (lambda d: d.update(shadow={"duration": "soon"}), "shadow.duration"),
        (lambda d: d.update(shadow={"duration": "1h"}), "shadow.duration"),
        (lambda d: d.update(shadow={"minRequests": 0}), "shadow.minRequests"),
        (lambda d: d.update(shadow={"mirror": True}), "shadow.mirror"),
    ],
)
def test_bad_spec_names_the_field(mutate, field):
    data = valid()
    mutate(data)
    with pytest.raises(SpecError) as error:
        parse_spec(data)
    message = str(error.value)
    assert message.startswith(f"{field}:"), message
    assert "\n" not in message


def test_all_checks_disabled_is_rejected():
    data = valid()
    for check in data["checks"]:
        check["enabled"] = False
    with pytest.raises(SpecError, match=r"^checks: at least one"):
        parse_spec(data)


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [10, 20\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)


def test_shadow_is_on_by_default_for_one_interval_at_the_spec_minimum():
    data = valid()
    data.pop("shadow", None)
    spec = parse_spec(data)
    assert spec.shadow == ShadowSpec(enabled=True, duration=spec.interval, min_requests=spec.min_requests)


def test_shadow_values_and_turning_it_off():
    data = valid()
    data["shadow"] = {"duration": "45s", "minRequests": 50}
    assert parse_spec(data).shadow == ShadowSpec(enabled=True, duration=45.0, min_requests=50)
    data["shadow"] = {"enabled": False}
    assert not parse_spec(data).shadow.enabled


def test_live_quality_is_optional_and_parsed():
    data = valid()
    assert "live-quality" not in {c["name"] for c in data["checks"]}
    data["checks"].append({"name": "live-quality", "maxAccuracyDrop": 0.02, "maxMaeRatio": 1.1, "failureLimit": 2})
    live = next(c for c in parse_spec(data).enabled_checks if c.name == "live-quality")
    assert (live.max_accuracy_drop, live.max_mae_ratio, live.min_labelled, live.failure_limit) == (0.02, 1.1, 30, 2)
    data["checks"][-1] = {"name": "live-quality", "maxMaeRatio": 1.5, "minLabelled": 200, "enabled": False}
    off = next(c for c in parse_spec(data).checks if c.name == "live-quality")
    assert (off.enabled, off.max_accuracy_drop, off.min_labelled) == (False, None, 200)


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"name": "live-quality", "minLabelled": 50}, "checks[6].maxAccuracyDrop"),
        ({"name": "live-quality", "maxAccuracyDrop": 0.02, "max": 0.1}, "checks[6].max"),
        ({"name": "live-quality", "maxAccuracyDrop": 1.5}, "checks[6].maxAccuracyDrop"),
        ({"name": "live-quality", "maxAccuracyDrop": -0.1}, "checks[6].maxAccuracyDrop"),
        ({"name": "live-quality", "maxMaeRatio": 0}, "checks[6].maxMaeRatio"),
        ({"name": "live-quality", "maxMaeRatio": 1.2, "minLabelled": 0}, "checks[6].minLabelled"),
        ({"name": "success-rate", "min": 0.9, "maxAccuracyDrop": 0.1}, "checks[6].maxAccuracyDrop"),
    ],
)
def test_bad_live_quality_names_the_field(entry, field):
    data = valid()
    data["checks"].append(entry)
    with pytest.raises(SpecError, match=rf"^{re.escape(field)}:"):
        parse_spec(data)
