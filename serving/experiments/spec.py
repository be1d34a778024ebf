"""The experiment spec: variants and their weights, the sticky key, the outcome, and when to decide.

One small YAML file, read by `make ab` on one machine and rendered by the chart's `experiment.*` values in a
cluster. Loading validates every field and reports the first problem as one line that names it, like the
rollout's analysis spec, whose duration, integer and check parsers it reuses: the guards are the rollout's
own `success-rate` and `latency-p99` checks, so a variant that breaks is stopped by the same rule that rolls a
broken canary back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.rollout.core.spec import Check, SpecError, _integer, parse_check, parse_duration, read_yaml

# Guards judge one variant against the control per interval; outcome checks belong to the experiment itself.
GUARD_NAMES = ("success-rate", "latency-p99")
# What a variant is judged on: `label` (accuracy of a classifier, absolute error of a regressor, from the
# labels posted to /feedback) or `value` (the business value posted to /feedback as `outcome`).
OUTCOME_METRICS = ("label", "value")
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")
HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")
TOP_KEYS = {
    "name",
    "variants",
    "control",
    "assignment",
    "outcome",
    "alpha",
    "minEffect",
    "maxDuration",
    "interval",
    "minSamples",
    "guards",
}


@dataclass(frozen=True)
class Variant:
    """One arm: a registered version (or an alias resolved at start) and its share of users in percent."""

    name: str
    weight: int
    version: str | None = None
    alias: str | None = None


@dataclass(frozen=True)
class ExperimentSpec:
    """What runs, how users are split, what is measured and when the experiment decides."""

    name: str
    variants: tuple[Variant, ...]
    control: str
    header: str
    outcome: str
    alpha: float
    min_effect: float
    max_duration: float
    interval: float
    min_samples: int
    guards: tuple[Check, ...]

    @property
    def treatments(self) -> tuple[Variant, ...]:
        """Return every variant but the control: each is compared with it."""
        return tuple(variant for variant in self.variants if variant.name != self.control)


def _share(data: dict[str, Any], key: str, default: float) -> float:
    """Return a number strictly between 0 and 1 (alpha, minEffect)."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise SpecError(f"{key}: expected a number between 0 and 1 (exclusive), got {value!r}")
    return float(value)


def parse_variant(data: Any, field: str) -> Variant:
    """Validate one entry of `variants`: a name, exactly one of version or alias, a weight in percent."""
    if not isinstance(data, dict):
        raise SpecError(f"{field}: expected a mapping like {{name: a, version: '3', weight: 50}}, got {data!r}")
    unknown = sorted(set(data) - {"name", "version", "alias", "weight"})
    if unknown:
        raise SpecError(f"{field}.{unknown[0]}: unknown key (name, version, alias, weight)")
    name = data.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise SpecError(f"{field}.name: expected a DNS label (a-z, 0-9, '-', at most 32), got {name!r}")
    given = [key for key in ("version", "alias") if key in data]
    if len(given) != 1:
        raise SpecError(f"{field}.version: give exactly one of version or alias ({'both' if given else 'neither'})")
    ref = data[given[0]]
    if isinstance(ref, bool) or not isinstance(ref, str | int) or not str(ref).strip():
        raise SpecError(f"{field}.{given[0]}: expected a registry {given[0]}, got {ref!r}")
    weight = _integer(data.get("weight"), f"{field}.weight", 1)
    return Variant(name, weight, **{given[0]: str(ref)})


def parse_variants(value: Any) -> tuple[Variant, ...]:
    """Validate `variants`: two or more, distinct names, weights summing to 100."""
    if not isinstance(value, list) or len(value) < 2:
        raise SpecError(f"variants: expected a list of two or more variants, got {value!r}")
    variants = tuple(parse_variant(entry, f"variants[{i}]") for i, entry in enumerate(value))
    for i, variant in enumerate(variants):
        if variant.name in (other.name for other in variants[:i]):
            raise SpecError(f"variants[{i}].name: duplicate variant {variant.name!r}")
    total = sum(variant.weight for variant in variants)
    if total != 100:
        raise SpecError(f"variants: weights must sum to 100, got {total}")
    return variants


def parse_assignment(data: Any) -> str:
    """Validate `assignment` and return the header whose value is the sticky key."""
    if not isinstance(data, dict) or set(data) != {"header"}:
        raise SpecError(f"assignment: expected {{header: x-user-id}}, got {data!r}")
    header = data["header"]
    if not isinstance(header, str) or not HEADER.match(header):
        raise SpecError(f"assignment.header: expected an HTTP header name, got {header!r}")
    return header.lower()


def parse_outcome(data: Any) -> str:
    """Validate `outcome` ({metric: label} or {metric: value}) and return the metric."""
    if not isinstance(data, dict) or set(data) != {"metric"}:
        raise SpecError(f"outcome: expected {{metric: label}} or {{metric: value}}, got {data!r}")
    if data["metric"] not in OUTCOME_METRICS:
        raise SpecError(f"outcome.metric: expected one of {', '.join(OUTCOME_METRICS)}, got {data['metric']!r}")
    return str(data["metric"])


def parse_guards(value: Any) -> tuple[Check, ...]:
    """Validate `guards`: the rollout's success-rate and latency-p99 checks, parsed by the rollout's parser."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SpecError(f"guards: expected a list of checks, got {value!r}")
    guards = tuple(parse_check(entry, f"guards[{i}]") for i, entry in enumerate(value))
    for i, guard in enumerate(guards):
        if guard.name not in GUARD_NAMES:
            raise SpecError(f"guards[{i}].name: a guard is one of {', '.join(GUARD_NAMES)}, got {guard.name!r}")
        if guard.name in (other.name for other in guards[:i]):
            raise SpecError(f"guards[{i}].name: duplicate guard {guard.name!r}")
    return guards


def parse_experiment(data: Any) -> ExperimentSpec:
    """Validate a parsed YAML document and return the typed experiment spec."""
    if not isinstance(data, dict):
        raise SpecError("spec: expected a mapping at the top level")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise SpecError(f"{unknown[0]}: unknown key")
    for key in ("name", "variants", "outcome", "maxDuration"):
        if key not in data:
            raise SpecError(f"{key}: required")
    name = data["name"]
    if not isinstance(name, str) or not NAME.match(name):
        raise SpecError(f"name: expected a DNS label (a-z, 0-9, '-', at most 32), got {name!r}")
    variants = parse_variants(data["variants"])
    control = data.get("control", variants[0].name)
    if control not in [variant.name for variant in variants]:
        raise SpecError(f"control: expected one of the variants' names, got {control!r}")
    max_duration = parse_duration(data["maxDuration"], "maxDuration")
    interval = parse_duration(data.get("interval", "30s"), "interval")
    if interval > max_duration:
        raise SpecError(f"interval: must not exceed maxDuration ({max_duration:g}s)")
    return ExperimentSpec(
        name=name,
        variants=variants,
        control=str(control),
        header=parse_assignment(data.get("assignment", {"header": "x-user-id"})),
        outcome=parse_outcome(data["outcome"]),
        alpha=_share(data, "alpha", 0.05),
        min_effect=_share(data, "minEffect", 0.02),
        max_duration=max_duration,
        interval=interval,
        min_samples=_integer(data.get("minSamples", 30), "minSamples", 1),
        guards=parse_guards(data.get("guards")),
    )


def load_experiment(path: str | Path) -> ExperimentSpec:
    """Read and validate an experiment spec file."""
    return parse_experiment(read_yaml(path))
