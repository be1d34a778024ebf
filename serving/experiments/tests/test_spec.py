"""The experiment spec: the shipped file loads, and every refusal names its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from serving.experiments.spec import load_experiment, parse_experiment
from serving.rollout.core.spec import SpecError

SHIPPED = Path(__file__).resolve().parents[1] / "ab-local.yaml"


def good() -> dict[str, Any]:
    return yaml.safe_load(SHIPPED.read_text())


def test_the_shipped_spec_loads() -> None:
    spec = load_experiment(SHIPPED)
    assert [(v.name, v.alias, v.weight) for v in spec.variants] == [("a", "champion", 50), ("b", "challenger", 50)]
    assert (spec.control, spec.header, spec.outcome) == ("a", "x-user-id", "label")
    assert [t.name for t in spec.treatments] == ["b"]
    assert [g.name for g in spec.guards] == ["success-rate", "latency-p99"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"variants": [{"name": "a", "version": "1", "weight": 100}]}, "variants:"),
        (
            {"variants": [{"name": "a", "version": "1", "weight": 60}, {"name": "b", "alias": "x", "weight": 30}]},
            "variants: weights must sum to 100",
        ),
        (
            {
                "variants": [
                    {"name": "a", "version": "1", "alias": "c", "weight": 50},
                    {"name": "b", "alias": "x", "weight": 50},
                ]
            },
            "variants[0].version: give exactly one",
        ),
        (
            {"variants": [{"name": "a", "version": "1", "weight": 50}, {"name": "a", "alias": "x", "weight": 50}]},
            "variants[1].name: duplicate",
        ),
        ({"control": "z"}, "control:"),
        ({"assignment": {"header": "x user"}}, "assignment.header:"),
        ({"outcome": {"metric": "revenue"}}, "outcome.metric:"),
        ({"alpha": 1.5}, "alpha:"),
        ({"minEffect": 0}, "minEffect:"),
        ({"maxDuration": "soon"}, "maxDuration:"),
        ({"interval": "10m"}, "interval: must not exceed maxDuration"),
        ({"guards": [{"name": "input-drift", "max": 0.2}]}, "guards[0].name: a guard is one of"),
        ({"guards": [{"name": "success-rate"}]}, "guards[0].min: required"),
        ({"winner": "b"}, "winner: unknown key"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as refused:
        parse_experiment({**good(), **change})
    assert str(refused.value).startswith(field), str(refused.value)
