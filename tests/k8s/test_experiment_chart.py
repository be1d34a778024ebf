"""The chart's A/B experiment: a header-matched route per variant beside the weighted main route, schema-valid.

The Gateway API cannot hash, so the variant is computed upstream from the user's key by the same function
the local router uses (`serving/experiments/assign.py`) and sent as `x-plinth-variant`; the experiment's
route sends each variant to its track, and requests without the header split by the experiment's weights.
"""

from __future__ import annotations

from typing import Any

import pytest
from k8s_tooling import (
    CHART,
    CLUSTER_VALUES,
    NAMESPACE,
    SIGNING_VALUES,
    load_documents,
    named,
    render_with,
    run,
    tool,
    validate_object,
)

from serving.experiments.assign import VARIANT_HEADER

EXPERIMENT = ["--set", "experiment.enabled=true", "--set", "rolloutController.enabled=false"]
WEIGHTED = [*EXPERIMENT, "--set", "experiment.control.weight=80", "--set", "experiment.treatment.weight=20"]


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    rendered = render_with(*WEIGHTED, "--set", "experiment.treatment.name=new-ranker")
    assert rendered.returncode == 0, rendered.stderr
    return load_documents(rendered.stdout)


def test_the_experiment_values_lint_and_every_object_matches_its_schema(objects: list[dict[str, Any]]) -> None:
    lint = run(
        [
            tool("helm"),
            "lint",
            "--strict",
            str(CHART),
            "--namespace",
            NAMESPACE,
            *CLUSTER_VALUES,
            *SIGNING_VALUES,
            *WEIGHTED,
        ]
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    for obj in objects:
        validate_object(obj)
    assert not [obj for obj in objects if obj["metadata"]["name"].endswith("-rollout")], "no controller"


def test_each_variant_header_goes_to_its_track_and_the_rest_by_the_experiment_weights(
    objects: list[dict[str, Any]],
) -> None:
    route = named(objects, "HTTPRoute", "release-plinth-serving-experiment")
    assert route["spec"]["parentRefs"] == named(objects, "HTTPRoute", "release-plinth-serving")["spec"]["parentRefs"]
    by_variant = {}
    for rule in route["spec"]["rules"]:
        (backend,) = rule["backendRefs"]
        headers = {(h["name"], h["value"]) for match in rule["matches"] for h in match["headers"]}
        (header,) = headers
        by_variant[header] = backend["name"]
        paths = {(match["method"], match["path"]["value"]) for match in rule["matches"]}
        assert ("POST", "/predict") in paths
        assert ("POST", "/v2/models/plinth-classifier/infer") in paths
    assert by_variant == {
        (VARIANT_HEADER, "a"): "release-plinth-serving-stable",
        (VARIANT_HEADER, "new-ranker"): "release-plinth-serving-canary",
    }
    for rule in named(objects, "HTTPRoute", "release-plinth-serving")["spec"]["rules"]:
        assert {ref["name"]: ref["weight"] for ref in rule["backendRefs"]} == {
            "release-plinth-serving-stable": 80,
            "release-plinth-serving-canary": 20,
        }


def test_without_an_experiment_there_is_no_experiment_route() -> None:
    rendered = render_with()
    assert rendered.returncode == 0, rendered.stderr
    assert "-experiment" not in {obj["metadata"]["name"][-11:] for obj in load_documents(rendered.stdout)}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "experiment.enabled=true"], "experiment.enabled: set rolloutController.enabled=false"),
        ([*EXPERIMENT, "--set", "canary.enabled=false"], "experiment.enabled: needs httpRoute.enabled and canary"),
        ([*EXPERIMENT, "--set", "experiment.control.weight=60"], "experiment.control.weight (60) + experiment.tre"),
        ([*EXPERIMENT, "--set", "experiment.treatment.name=a"], "experiment.treatment.name: must differ"),
        ([*EXPERIMENT, "--set", "experiment.treatment.name=B_2"], "/experiment/treatment/name"),
        ([*EXPERIMENT, "--set", "experiment.variantHeader=x plinth"], "/experiment/variantHeader"),
        ([*EXPERIMENT, "--set", "experiment.control.weight=100"], "/experiment/control/weight"),
    ],
)
def test_bad_experiment_values_are_refused_naming_the_value(args: list[str], message: str) -> None:
    rendered = render_with(*args)
    assert rendered.returncode != 0
    assert message in rendered.stderr, rendered.stderr
