"""The analysis spec: one small YAML file that both the local and the in-cluster rollout read.

Loading validates every field and reports the first problem as one line that names it, so a bad ConfigMap
fails the controller at start, not in the middle of a rollout.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHECK_NAMES = (
    "success-rate",
    "latency-p99",
    "prediction-divergence",
    "input-drift",
    "live-quality",
    "shadow-churn",
    "estimated-accuracy",
)
# Rows the canary must have scored before divergence / drift are judged: JS over fewer predictions, or a
# PSI over fewer rows, is mostly sampling noise.
DEFAULT_MIN_PREDICTIONS = {
    "prediction-divergence": 30,
    "input-drift": 100,
    "shadow-churn": 30,
    "estimated-accuracy": 100,
}
# Labelled rows each version needs (summed over the rollout) before live quality is judged: an accuracy over
# a handful of labels swings by tens of points.
DEFAULT_MIN_LABELLED = 30
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_PATTERN = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")


class SpecError(ValueError):
    """The spec is invalid; the message is one line naming the field."""


@dataclass(frozen=True)
class Check:
    """One analysis check: a threshold on one signal and how many failed intervals it tolerates."""

    name: str
    failure_limit: int
    enabled: bool = True
    minimum: float | None = None
    maximum: float | None = None
    max_seconds: float | None = None
    max_ratio_to_stable: float | None = None
    min_predictions: int | None = None
    min_labelled: int | None = None
    max_accuracy_drop: float | None = None
    max_mae_ratio: float | None = None
    # `shadow-churn`: the share of paired rows the canary may answer differently (`churn.py`).
    max_churn: float | None = None
    # Anytime-valid comparison with the stable (`sequential.py`): the chance of rolling back a canary as
    # good as the stable, and the smallest regression (a share: 0.01 is one point) the check must catch.
    alpha: float | None = None
    min_effect: float | None = None

    @property
    def sequential(self) -> bool:
        """Return whether the check compares the canary with the stable on cumulative counts."""
        return self.alpha is not None and self.min_effect is not None


@dataclass(frozen=True)
class ShadowSpec:
    """The phase before any weighted step: the canary answers a mirror of live traffic, and nobody sees it.

    It ends when one interval passes every check after at least `duration` seconds; `min_requests` is the
    mirrored requests an interval needs (the spec's `minRequests` when not given).
    """

    enabled: bool = True
    duration: float = 0.0
    min_requests: int = 1
    # Categorical features whose values the `shadow-churn` check reports churn for (`slices: [{feature: x}]`).
    slices: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnalysisSpec:
    """Steps of canary weight, the interval between analyses and the checks that gate each step."""

    steps: tuple[int, ...]
    interval: float
    min_requests: int
    progress_deadline: float
    checks: tuple[Check, ...]
    shadow: ShadowSpec = ShadowSpec()

    @property
    def decisive_step(self) -> int:
        """Return the weight from which comparisons must rule out minEffect before the rollout advances.

        The last step below 100 %: the last where the stable still answers, so both sides of a comparison
        still grow (at 100 % the stable's counts stop). A spec of one step (100) decides there.
        """
        return max((step for step in self.steps if step < 100), default=100)

    @property
    def enabled_checks(self) -> tuple[Check, ...]:
        """Return the checks that take part in the analysis."""
        return tuple(check for check in self.checks if check.enabled)


def parse_duration(value: Any, field: str) -> float:
    """Return seconds for "500ms", "30s", "10m", "1h" (or a bare number of seconds)."""
    if isinstance(value, bool):
        raise SpecError(f"{field}: expected a duration like 30s, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = DURATION_PATTERN.match(str(value).strip())
        if not match:
            raise SpecError(f"{field}: expected a duration like 30s or 10m, got {value!r}")
        seconds = float(match.group(1)) * DURATION_UNITS[match.group(2)]
    if not seconds > 0 or math.isinf(seconds):
        raise SpecError(f"{field}: must be a positive duration, got {value!r}")
    return seconds


def _number(data: dict[str, Any], key: str, field: str, *, positive: bool = True) -> float | None:
    """Return an optional finite number from `data`, or None when absent."""
    if key not in data:
        return None
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(f"{field}.{key}: expected a number, got {value!r}")
    if positive and value <= 0:
        raise SpecError(f"{field}.{key}: must be > 0, got {value!r}")
    return float(value)


def _integer(value: Any, field: str, minimum: int) -> int:
    """Return `value` as an int no smaller than `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{field}: expected an integer >= {minimum}, got {value!r}")
    return value


# The keys of a sequential comparison (`alpha`, `minEffect`), accepted by the checks that compare counts.
SEQUENTIAL_KEYS = {"alpha", "minEffect"}
CHECK_KEYS = {
    "success-rate": {"min"} | SEQUENTIAL_KEYS,
    "latency-p99": {"maxSeconds", "maxRatioToStable"} | SEQUENTIAL_KEYS,
    "prediction-divergence": {"max", "minPredictions"} | SEQUENTIAL_KEYS,
    "input-drift": {"max", "minPredictions"},
    "live-quality": {"minLabelled", "maxAccuracyDrop", "maxMaeRatio"} | SEQUENTIAL_KEYS,
    "shadow-churn": {"maxChurn", "minPredictions"} | SEQUENTIAL_KEYS,
    "estimated-accuracy": {"minPredictions"} | SEQUENTIAL_KEYS,
}
REQUIRED_KEYS = {
    "success-rate": "min",
    "latency-p99": "maxSeconds",
    "prediction-divergence": "max",
    "input-drift": "max",
    "shadow-churn": "maxChurn",
    "estimated-accuracy": "minEffect",
}
# A check that needs any one of several keys (live quality: a bound for classifiers, one for regressors).
REQUIRED_ANY_KEYS = {"live-quality": ("maxAccuracyDrop", "maxMaeRatio")}


def _share(data: dict[str, Any], key: str, field: str) -> float | None:
    """Return an optional share in (0, 1]."""
    value = _number(data, key, field)
    if value is not None and value > 1:
        raise SpecError(f"{field}.{key}: a share between 0 and 1 (0.05 is 5 %), got {data[key]!r}")
    return value


def parse_sequential(data: dict[str, Any], field: str) -> tuple[float | None, float | None]:
    """Validate `alpha` and `minEffect`: both or neither, a level in (0, 0.5], an effect share in (0, 1]."""
    alpha, effect = _number(data, "alpha", field), _number(data, "minEffect", field)
    if alpha is not None and alpha > 0.5:
        raise SpecError(f"{field}.alpha: a false-rollback rate between 0 and 0.5, got {data['alpha']!r}")
    if effect is not None and effect > 1:
        raise SpecError(f"{field}.minEffect: a share between 0 and 1 (0.01 is one point), got {data['minEffect']!r}")
    if (alpha is None) != (effect is None):
        missing = "minEffect" if effect is None else "alpha"
        raise SpecError(f"{field}.{missing}: required with {'alpha' if effect is None else 'minEffect'}")
    return alpha, effect


def parse_check(data: Any, field: str) -> Check:
    """Validate one entry of `checks`."""
    if not isinstance(data, dict):
        raise SpecError(f"{field}: expected a mapping, got {data!r}")
    name = data.get("name")
    if name not in CHECK_NAMES:
        raise SpecError(f"{field}.name: expected one of {', '.join(CHECK_NAMES)}, got {name!r}")
    allowed = CHECK_KEYS[name] | {"name", "failureLimit", "enabled"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SpecError(f"{field}.{unknown[0]}: unknown key for check {name!r}")
    required = REQUIRED_KEYS.get(name)
    if required is not None and required not in data:
        raise SpecError(f"{field}.{required}: required for check {name!r}")
    anyof = REQUIRED_ANY_KEYS.get(name, ())
    if anyof and not any(key in data for key in anyof):
        raise SpecError(f"{field}.{anyof[0]}: required for check {name!r} (or {', '.join(anyof[1:])})")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise SpecError(f"{field}.enabled: expected true or false, got {enabled!r}")
    minimum = _number(data, "min", field)
    if minimum is not None and minimum > 1:
        raise SpecError(f"{field}.min: a success rate is a share between 0 and 1, got {minimum!r}")
    alpha, effect = parse_sequential(data, field)
    drop = _number(data, "maxAccuracyDrop", field, positive=False)
    if drop is not None and not 0 <= drop <= 1:
        raise SpecError(f"{field}.maxAccuracyDrop: an accuracy drop is a share between 0 and 1, got {drop!r}")
    return Check(
        name=name,
        failure_limit=_integer(data.get("failureLimit", 1), f"{field}.failureLimit", 1),
        enabled=enabled,
        minimum=minimum,
        maximum=_number(data, "max", field),
        max_seconds=_number(data, "maxSeconds", field),
        max_ratio_to_stable=_number(data, "maxRatioToStable", field),
        min_predictions=_integer(data["minPredictions"], f"{field}.minPredictions", 1)
        if "minPredictions" in data
        else DEFAULT_MIN_PREDICTIONS.get(name),
        min_labelled=_integer(data.get("minLabelled", DEFAULT_MIN_LABELLED), f"{field}.minLabelled", 1)
        if name == "live-quality"
        else None,
        max_accuracy_drop=drop,
        max_mae_ratio=_number(data, "maxMaeRatio", field),
        max_churn=_share(data, "maxChurn", field),
        alpha=alpha,
        min_effect=effect,
    )


def parse_steps(value: Any) -> tuple[int, ...]:
    """Validate the weight steps: increasing percentages that end at 100."""
    if not isinstance(value, list) or not value:
        raise SpecError(f"steps: expected a non-empty list of percentages, got {value!r}")
    steps = tuple(_integer(step, f"steps[{i}]", 1) for i, step in enumerate(value))
    for i, (low, high) in enumerate(itertools.pairwise(steps)):
        if high <= low:
            raise SpecError(f"steps[{i + 1}]: steps must increase, got {low} then {high}")
    if steps[-1] != 100:
        raise SpecError(f"steps[{len(steps) - 1}]: the last step must be 100, got {steps[-1]}")
    return steps


def parse_shadow(data: Any, interval: float, min_requests: int) -> ShadowSpec:
    """Validate `shadow` (absent: on, one interval long, the spec's minRequests)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"shadow: expected a mapping like {{duration: 30s, minRequests: 20}}, got {data!r}")
    unknown = sorted(set(data) - {"enabled", "duration", "minRequests", "slices"})
    if unknown:
        raise SpecError(f"shadow.{unknown[0]}: unknown key (enabled, duration, minRequests, slices)")
    slices = data.get("slices", [])
    if not isinstance(slices, list):
        raise SpecError(f"shadow.slices: expected a list like [{{feature: contract_type}}], got {slices!r}")
    for i, entry in enumerate(slices):
        if not isinstance(entry, dict) or set(entry) != {"feature"} or not isinstance(entry["feature"], str):
            raise SpecError(f"shadow.slices[{i}]: expected {{feature: <name>}}, got {entry!r}")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise SpecError(f"shadow.enabled: expected true or false, got {enabled!r}")
    return ShadowSpec(
        enabled=enabled,
        duration=parse_duration(data.get("duration", interval), "shadow.duration"),
        min_requests=_integer(data.get("minRequests", min_requests), "shadow.minRequests", 1),
        slices=tuple(entry["feature"] for entry in slices),
    )


def parse_spec(data: Any) -> AnalysisSpec:
    """Validate a parsed YAML document and return the typed spec."""
    if not isinstance(data, dict):
        raise SpecError("spec: expected a mapping at the top level")
    unknown = sorted(set(data) - {"steps", "interval", "minRequests", "progressDeadline", "checks", "shadow"})
    if unknown:
        raise SpecError(f"{unknown[0]}: unknown key")
    for key in ("steps", "interval", "checks"):
        if key not in data:
            raise SpecError(f"{key}: required")
    raw_checks = data["checks"]
    if not isinstance(raw_checks, list) or not raw_checks:
        raise SpecError("checks: expected a non-empty list")
    checks = tuple(parse_check(entry, f"checks[{i}]") for i, entry in enumerate(raw_checks))
    names = [check.name for check in checks]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise SpecError(f"checks[{i}].name: duplicate check {name!r}")
    if not any(check.enabled for check in checks):
        raise SpecError("checks: at least one check must be enabled")
    interval = parse_duration(data["interval"], "interval")
    deadline = parse_duration(data.get("progressDeadline", "10m"), "progressDeadline")
    if deadline < interval:
        raise SpecError(f"progressDeadline: must be at least one interval ({data['interval']})")
    min_requests = _integer(data.get("minRequests", 1), "minRequests", 1)
    shadow = parse_shadow(data.get("shadow"), interval, min_requests)
    if shadow.enabled and shadow.duration >= deadline:
        raise SpecError(f"shadow.duration: must be shorter than progressDeadline ({deadline:g}s)")
    return AnalysisSpec(
        steps=parse_steps(data["steps"]),
        interval=interval,
        min_requests=min_requests,
        progress_deadline=deadline,
        checks=checks,
        shadow=shadow,
    )


def read_yaml(path: str | Path) -> Any:
    """Read a spec file's YAML (an analysis or an experiment spec); unreadable or not YAML: one-line SpecError."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise SpecError(f"spec: cannot read {path}: {error.strerror}") from error
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SpecError(f"spec: {path} is not valid YAML: {str(error).splitlines()[0]}") from error


def load_spec(path: str | Path) -> AnalysisSpec:
    """Read and validate a spec file."""
    return parse_spec(read_yaml(path))
