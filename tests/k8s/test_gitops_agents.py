"""The GitOps agent examples in manifests/gitops/ against what the overlays really render.

Argo CD and Flux must deploy the prod overlay and leave alone exactly what the rollout controller steers
(the route weights, the canary's replicas, the stable's served-version annotation). The names in their
ignore rules are checked against the rendered objects, so renaming the chart's objects cannot silently
turn an ignore rule into a no-op. The examples are validated against vendored CRD schema subsets
(tests/k8s/schemas/README.md); no agent runs here.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from k8s_tooling import CLUSTER_SCOPED, ROOT, crd_schema, load_documents, run, tool

MANIFESTS = ROOT / "manifests"
GITOPS = MANIFESTS / "gitops"
OVERLAYS = sorted(path.name for path in (MANIFESTS / "overlays").iterdir() if path.is_dir())
SCHEMAS = {
    ("argoproj.io/v1alpha1", "Application"): "application-argoproj.io-v1alpha1-argo-cd-crds-catalog.json",
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"): (
        "kustomization-kustomize.toolkit.fluxcd.io-v1-flux-crds-catalog.json"
    ),
    ("source.toolkit.fluxcd.io/v1", "GitRepository"): (
        "gitrepository-source.toolkit.fluxcd.io-v1-flux-crds-catalog.json"
    ),
}
FLUX_CREATE_ONLY = ("kustomize.toolkit.fluxcd.io/ssa", "IfNotPresent")
SERVED_VERSION = "plinth.dev/served-version"
STATE_CONFIGMAP = "plinth-classifier-rollout-state"


def example(name: str) -> list[dict[str, Any]]:
    return load_documents((GITOPS / name).read_text())


def kustomize(overlay: str) -> list[dict[str, Any]]:
    result = run([tool("kubectl"), "kustomize", str(MANIFESTS / "overlays" / overlay)])
    assert result.returncode == 0, result.stderr
    return load_documents(result.stdout)


def one(objects: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    matches = [obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"].endswith(suffix)]
    assert len(matches) == 1, f"expected one {kind} *{suffix}, found {len(matches)}"
    return matches[0]


def jq_path(expression: str, document: Any) -> list[Any]:
    """Return what a jq path of `.key` and `[]` steps selects (the subset Argo CD's ignore rules use here)."""
    steps = re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|(\[\])", expression)
    if "".join(f".{key}" if key else "[]" for key, _ in steps) != expression:
        raise ValueError(f"unsupported jq path: {expression}")
    selected = [document]
    for key, every in steps:
        selected = [item for node in selected for item in node] if every else [node[key] for node in selected]
    return selected


def pointer_tokens(pointer: str) -> list[str]:
    """Return the reference tokens of a JSON pointer, unescaped (RFC 6901: `~1` is `/`, `~0` is `~`)."""
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer.removeprefix("/").split("/")]


@pytest.fixture(scope="module")
def prod() -> list[dict[str, Any]]:
    return kustomize("prod")


def test_each_example_holds_the_expected_objects_and_matches_its_schema() -> None:
    assert sorted(path.name for path in GITOPS.iterdir()) == ["argocd-application.yaml", "flux-kustomization.yaml"]
    assert [(obj["apiVersion"], obj["kind"]) for obj in example("argocd-application.yaml")] == [
        ("argoproj.io/v1alpha1", "Application")
    ]
    assert [(obj["apiVersion"], obj["kind"]) for obj in example("flux-kustomization.yaml")] == [
        ("source.toolkit.fluxcd.io/v1", "GitRepository"),
        ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
    ]
    for name in ("argocd-application.yaml", "flux-kustomization.yaml"):
        for obj in example(name):
            jsonschema.validate(obj, crd_schema(SCHEMAS[(obj["apiVersion"], obj["kind"])]))


def test_the_schemas_catch_a_misspelt_field() -> None:
    application = example("argocd-application.yaml")[0]
    application["spec"]["ignoreDifference"] = application["spec"].pop("ignoreDifferences")
    with pytest.raises(jsonschema.ValidationError, match="ignoreDifference"):
        jsonschema.validate(application, crd_schema(SCHEMAS[("argoproj.io/v1alpha1", "Application")]))
    kustomization = example("flux-kustomization.yaml")[1]
    del kustomization["spec"]["prune"]
    with pytest.raises(jsonschema.ValidationError, match="prune"):
        jsonschema.validate(kustomization, crd_schema(SCHEMAS[("kustomize.toolkit.fluxcd.io/v1", "Kustomization")]))


def test_both_agents_deploy_the_prod_overlay_which_never_deploys_them(prod: list[dict[str, Any]]) -> None:
    (application,) = example("argocd-application.yaml")
    repository, kustomization = example("flux-kustomization.yaml")
    assert application["spec"]["source"]["path"] == "manifests/overlays/prod"
    assert application["spec"]["destination"]["namespace"] == "plinth"
    assert {obj["metadata"]["namespace"] for obj in prod if obj["kind"] not in CLUSTER_SCOPED} == {"plinth"}
    assert [obj["metadata"]["name"] for obj in prod if obj["kind"] == "Namespace"] == ["plinth"]
    assert kustomization["spec"]["path"] == "./manifests/overlays/prod"
    assert kustomization["spec"]["prune"] is True
    assert kustomization["spec"]["sourceRef"] == {"kind": "GitRepository", "name": repository["metadata"]["name"]}
    assert repository["metadata"]["namespace"] == kustomization["metadata"]["namespace"]
    assert not (GITOPS / "kustomization.yaml").exists()
    for path in MANIFESTS.rglob("kustomization.yaml"):
        assert "gitops" not in path.read_text(), f"{path} pulls in the GitOps agent examples"
    assert {obj["kind"] for obj in prod}.isdisjoint({"Application", "Kustomization", "GitRepository"})


def test_argo_cd_ignores_exactly_what_the_rollout_controller_steers(prod: list[dict[str, Any]]) -> None:
    (application,) = example("argocd-application.yaml")
    route = one(prod, "HTTPRoute")
    canary = one(prod, "Deployment", "-canary")
    stable = one(prod, "Deployment", "-stable")
    rules = {(rule["kind"], rule["name"]): rule for rule in application["spec"]["ignoreDifferences"]}
    assert set(rules) == {
        ("HTTPRoute", route["metadata"]["name"]),
        ("Deployment", canary["metadata"]["name"]),
        ("Deployment", stable["metadata"]["name"]),
    }
    for obj in (route, canary, stable):
        rule = rules[(obj["kind"], obj["metadata"]["name"])]
        assert rule["group"] == obj["apiVersion"].rpartition("/")[0]
        assert rule["namespace"] == obj["metadata"]["namespace"]

    weights, filters = rules[("HTTPRoute", route["metadata"]["name"])]["jqPathExpressions"]
    assert weights == ".spec.rules[].backendRefs[].weight"
    # Every rule (the prediction API's, the Open Inference Protocol's) carries the stable and canary weights.
    assert len(route["spec"]["rules"]) == 2
    every_weight = [ref["weight"] for rule in route["spec"]["rules"] for ref in rule["backendRefs"]]
    assert every_weight == [100, 0, 100, 0]
    assert jq_path(weights, route) == every_weight, "the expression selects every backend weight, nothing else"
    # The shadow phase's RequestMirror filter: added and removed by the controller, never written in Git.
    assert filters == ".spec.rules[].filters"
    assert all("filters" not in rule for rule in route["spec"]["rules"]), "Git never writes the mirror filter"

    assert rules[("Deployment", canary["metadata"]["name"])]["jsonPointers"] == ["/spec/replicas"]
    assert "replicas" not in canary["spec"], "Git leaves the canary's size to the controller"
    (annotation,) = rules[("Deployment", stable["metadata"]["name"])]["jsonPointers"]
    assert pointer_tokens(annotation) == ["spec", "template", "metadata", "annotations", SERVED_VERSION]
    pod_annotations = stable["spec"]["template"]["metadata"].get("annotations") or {}
    assert SERVED_VERSION not in pod_annotations, "Git never writes it"

    options = application["spec"]["syncPolicy"]["syncOptions"]
    assert {"ServerSideApply=true", "RespectIgnoreDifferences=true"} <= set(options)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_flux_creates_the_route_of_every_overlay_and_never_overwrites_its_weights(overlay: str) -> None:
    objects = kustomize(overlay)
    key, value = FLUX_CREATE_ONLY
    assert one(objects, "HTTPRoute")["metadata"]["annotations"][key] == value
    assert not [obj for obj in objects if obj["metadata"]["name"] == STATE_CONFIGMAP], (
        "the controller's state ConfigMap is the controller's: no overlay renders it"
    )
    assert f"{key}: {value}" in (GITOPS / "flux-kustomization.yaml").read_text(), "the Flux example explains it"


def test_the_path_helpers_follow_jq_and_rfc_6901() -> None:
    document = {"a": [{"b": 1}, {"b": 2}], "c/d": {"e~f": 3}}
    assert jq_path(".a[].b", document) == [1, 2]
    with pytest.raises(ValueError, match="unsupported"):
        jq_path(".a | .b", document)
    assert pointer_tokens("/c~1d/e~0f") == ["c/d", "e~f"]
