"""The Dask cluster of XGBoost's distributed option (manifests/platform/dask): the operator's schema, hardened
pods on the pinned component image, and a scheduler only the training step and the workers reach."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from google.protobuf import json_format
from k8s_tooling import ROOT, crd_schema, load_documents, named, restricted_violations, run, tool, validate_object

from components import COMPONENT_IMAGE
from pipelines.training.compute import DASK_CLIENT_LABEL, ComputeTarget
from pipelines.training.pipeline import build_pipeline

SCHEDULER = {"dask.org/cluster-name": "plinth-dask", "dask.org/component": "scheduler"}
WORKER = {"dask.org/cluster-name": "plinth-dask", "dask.org/component": "worker"}


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    built = run([tool("kubectl"), "kustomize", str(ROOT / "manifests" / "platform" / "dask")])
    assert built.returncode == 0, built.stderr
    return load_documents(built.stdout)


def test_the_cluster_matches_the_operators_schema_and_runs_hardened_on_the_component_image(
    objects: list[dict[str, Any]],
) -> None:
    for obj in objects:
        validate_object(obj)
    cluster = named(objects, "DaskCluster", "plinth-dask")
    assert cluster["metadata"]["namespace"] == "plinth-platform"
    assert cluster["spec"]["worker"]["replicas"] == 2
    for role in ("scheduler", "worker"):
        pod = cluster["spec"][role]["spec"]
        assert restricted_violations(role, pod) == []
        assert pod["automountServiceAccountToken"] is False
        (container,) = pod["containers"]
        assert container["image"] == COMPONENT_IMAGE, "the workers run the step's own image and code"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert [mount["mountPath"] for mount in container["volumeMounts"]] == ["/tmp"]
        assert {"requests", "limits"} == set(container["resources"])
    assert cluster["spec"]["scheduler"]["service"]["selector"] == SCHEDULER
    # The vendored schema is strict: a misspelt field is refused, as the API server's field validation would.
    broken = {**cluster, "spec": {**cluster["spec"], "worker": {**cluster["spec"]["worker"], "replica": 2}}}
    with pytest.raises(jsonschema.ValidationError, match="replica"):
        jsonschema.validate(broken, crd_schema("daskcluster-kubernetes.dask.org-v1-dask-kubernetes-2026.3.0.json"))


def test_only_the_labelled_training_step_and_the_workers_reach_the_scheduler(objects: list[dict[str, Any]]) -> None:
    policy = named(objects, "NetworkPolicy", "plinth-dask-scheduler")
    assert policy["spec"]["podSelector"]["matchLabels"] == SCHEDULER
    client, workers = policy["spec"]["ingress"]
    (step,) = client["from"]
    assert step["podSelector"]["matchLabels"] == {DASK_CLIENT_LABEL: "true"}
    assert step["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kubeflow"}
    assert client["ports"] == [{"port": 8786, "protocol": "TCP"}]
    assert workers["from"] == [{"podSelector": {"matchLabels": WORKER}}]
    assert named(objects, "NetworkPolicy", "plinth-dask-worker")["spec"]["podSelector"]["matchLabels"] == WORKER
    # The pipeline compiled with a scheduler labels its XGBoost step so; without one, no step carries the label.
    for address, labels in (("tcp://plinth-dask-scheduler.plinth-platform.svc:8786", {DASK_CLIENT_LABEL: "true"}),
                            ("", None)):  # fmt: skip
        platform = json_format.MessageToDict(
            build_pipeline(ComputeTarget(gpu=False, dask_scheduler=address)).platform_spec
        )
        executor = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train-xgboost"]
        assert executor.get("podMetadata", {}).get("labels") == labels
