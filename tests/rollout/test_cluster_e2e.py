"""The cluster edge against a real API server (kind), on the chart's HTTPRoute. Skipped without a cluster.

`make e2e` installs the chart and exports PLINTH_E2E_NAMESPACE and PLINTH_E2E_RELEASE; the chart names the
route and Services after the release (`<release>`, `<release>-stable`, `<release>-canary`).
"""

import os
import shutil

import pytest

pytestmark = pytest.mark.e2e


def cluster_or_skip():
    if shutil.which("kind") is None or shutil.which("docker") is None:
        pytest.skip("kind and docker are not installed here: no Kubernetes cluster to run against")
    namespace, release = os.environ.get("PLINTH_E2E_NAMESPACE"), os.environ.get("PLINTH_E2E_RELEASE")
    if not namespace or not release:
        pytest.skip("PLINTH_E2E_NAMESPACE / PLINTH_E2E_RELEASE unset: the chart is not installed (run make e2e)")
    from kubernetes import config
    from kubernetes.client import ApiClient

    try:
        config.load_kube_config()
    except config.ConfigException as error:
        pytest.skip(f"no usable kubeconfig: {error}")
    return ApiClient(), namespace, release


def test_weights_move_on_the_real_httproute_and_rollback_restores_the_stable():
    from kubernetes.client import CustomObjectsApi

    from serving.rollout.kube import GROUP, PLURAL, VERSION, ClusterEdge

    api, namespace, release = cluster_or_skip()
    edge = ClusterEdge(
        api, namespace, release, f"{release}-stable", f"{release}-canary", f"{release}-canary", f"{release}-stable"
    )
    edge.prepare()
    edge.set_weight(25)
    route = CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, release)
    found = {ref["name"]: ref["weight"] for rule in route["spec"]["rules"] for ref in rule["backendRefs"]}
    assert found == {f"{release}-stable": 75, f"{release}-canary": 25}
    edge.rollback()
    route = CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, release)
    found = {ref["name"]: ref["weight"] for rule in route["spec"]["rules"] for ref in rule["backendRefs"]}
    assert found[f"{release}-canary"] == 0
