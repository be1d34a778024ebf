"""The chart's A/B experiment: a header-matched route per variant beside the weighted main route, schema-valid.

The Gateway API cannot hash, so the variant is computed upstream from the user's key by the same function
the local router uses (`serving/experiments/assign.py`) and sent as `x-plinth-variant`; the experiment's
route sends each variant to its track, and requests without the header split by the experiment's weights.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from k8s_tooling import (
    CHART,
    CLUSTER_VALUES,
    NAMESPACE,
    SIGNING_VALUES,
    VALUE_SETS,
    load_documents,
    named,
    render_with,
    run,
    tool,
    validate_object,
)

from serving.experiments.assign import VARIANT_HEADER
from serving.experiments.spec import parse_experiment

EXPERIMENT = VALUE_SETS["experiment"][len(SIGNING_VALUES) :]  # render_with adds the signing values
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
        ([*EXPERIMENT, "--set", "rolloutController.enabled=true"], "experiment.enabled: set rolloutController.ena"),
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


def test_the_decision_loop_runs_unprivileged_on_the_charts_variants_with_credentials_from_secrets(
    objects: list[dict[str, Any]],
) -> None:
    name = "release-plinth-serving-experiment"
    spec = parse_experiment(yaml.safe_load(named(objects, "ConfigMap", name)["data"]["experiment.yaml"]))
    # The loop judges what the route splits: the same names and weights, each on the alias its track serves.
    assert [(v.name, v.weight, v.alias) for v in spec.variants] == [
        ("a", 80, "champion"),
        ("new-ranker", 20, "challenger"),
    ]
    assert (spec.control, spec.outcome, spec.alpha, spec.min_effect) == ("a", "label", 0.05, 0.02)
    assert [guard.name for guard in spec.guards] == ["success-rate", "latency-p99"]
    deployment = named(objects, "Deployment", name)
    assert (deployment["spec"]["replicas"], deployment["spec"]["strategy"]["type"]) == (1, "Recreate")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    command = container["command"]
    assert command[:4] == ["python", "-m", "serving.experiments", "run"]
    assert command[command.index("--since") + 1] == "1765000000"
    assert "--keep-running" in command
    assert not {"--store", "--tracking-uri"} & set(command), "URIs with credentials stay out of the command line"
    env = {item["name"]: item for item in container["env"]}
    assert env["PLINTH_PREDICTION_STORE"]["valueFrom"]["secretKeyRef"]["name"] == "plinth-predictions-app"
    for variable in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert env[variable]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-experiments"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"]["port"] == "metrics"
    # No Kubernetes rights: no Role or binding names the loop, and its policy lets it reach only what it reads.
    grants = [obj for obj in objects if obj["kind"] in {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}]
    assert not [obj for obj in grants if "experiment" in obj["metadata"]["name"]]
    policy = named(objects, "NetworkPolicy", name)
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "experiment"
    egress_ports = {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
    assert egress_ports == {53, 5000, 5432, 9090}
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]


def test_pinned_tracks_become_pinned_variants_and_route_only_needs_no_loop() -> None:
    pinned = render_with(*EXPERIMENT, "--set", "model.stable.version=3", "--set", "model.version=4")
    assert pinned.returncode == 0, pinned.stderr
    data = named(load_documents(pinned.stdout), "ConfigMap", "release-plinth-serving-experiment")["data"]
    spec = parse_experiment(yaml.safe_load(data["experiment.yaml"]))
    assert [(v.name, v.version, v.alias) for v in spec.variants] == [("a", "3", None), ("b", "4", None)]
    route_only = render_with(
        "--set", "experiment.enabled=true", "--set", "rolloutController.enabled=false",
        "--set", "experiment.decision.enabled=false",
    )  # fmt: skip
    assert route_only.returncode == 0, route_only.stderr
    kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in load_documents(route_only.stdout)}
    assert ("HTTPRoute", "release-plinth-serving-experiment") in kinds
    assert not {("Deployment", "release-plinth-serving-experiment")} & kinds


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "feedback.enabled=false"], "experiment.decision.enabled: needs feedback.enabled"),
        (["--set", "experiment.startedAt=null"], "experiment.startedAt is required with experiment.decision"),
        (
            ["--set", "experiment.decision.mlflowCredentialsSecret.name=mlflow-reader"],
            "experiment.decision.mlflowCredentialsSecret.name is required with the decision loop",
        ),
        (["--set", "experiment.decision.interval=5d"], "/experiment/decision/interval"),
        (["--set", "experiment.decision.alpha=1"], "/experiment/decision/alpha"),
        (["--set", "experiment.decision.guards[0].name=input-drift"], "/experiment/decision/guards/0/name"),
    ],
)
def test_a_decision_loop_without_what_it_reads_is_refused_naming_the_value(args: list[str], message: str) -> None:
    rendered = render_with(*EXPERIMENT, *args)
    assert rendered.returncode != 0
    assert message in rendered.stderr, rendered.stderr
