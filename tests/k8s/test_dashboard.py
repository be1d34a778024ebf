"""The Grafana dashboard shipped in the chart: generated, fresh, selected per release, loadable by the sidecar."""

from __future__ import annotations

import json
import re

from k8s_tooling import load_documents, named, render, render_with

from serving.dashboards.__main__ import DASHBOARD
from serving.dashboards.build import render as render_dashboard


def panels_with_queries(dashboard: dict) -> list[dict]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def test_the_committed_dashboard_is_what_the_generator_writes() -> None:
    assert DASHBOARD.read_text() == render_dashboard(), f"{DASHBOARD} is stale: run `make chart-docs`"


def test_every_query_reads_one_release_through_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    names = [variable["name"] for variable in dashboard["templating"]["list"]]
    assert names == ["datasource", "namespace", "release", "quality_window"]
    panels = panels_with_queries(dashboard)
    assert len({panel["id"] for panel in panels}) == len(panels) >= 10
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert 'namespace="$namespace"' in expr, (panel["title"], expr)
            services = r"(\(stable\|canary\)|rollout|trigger-receiver|live-quality)"
            selects_release = re.search(r'service=~?"\$release-' + services + '"', expr)
            assert selects_release, (panel["title"], expr)


def test_the_configmap_carries_the_dashboard_and_the_sidecar_label() -> None:
    configmap = named(render("default"), "ConfigMap", "release-plinth-serving-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "annotations" not in configmap["metadata"]
    assert json.loads(configmap["data"]["plinth-serving.json"]) == json.loads(DASHBOARD.read_text())


def test_the_dashboard_takes_labels_and_annotations_and_can_be_left_out() -> None:
    result = render_with("--set", "dashboard.labels.team=ml", "--set", "dashboard.annotations.grafana_folder=MLOps")
    assert result.returncode == 0, result.stderr
    metadata = named(load_documents(result.stdout), "ConfigMap", "release-plinth-serving-dashboard")["metadata"]
    assert metadata["labels"]["team"] == "ml"
    assert metadata["annotations"] == {"grafana_folder": "MLOps"}
    off = render_with("--set", "dashboard.enabled=false")
    assert off.returncode == 0, off.stderr
    assert not [doc for doc in load_documents(off.stdout) if doc["metadata"]["name"].endswith("-dashboard")]
    # `--set` makes 1 a number: Kubernetes label values are strings, and the schema says so before the API does.
    refused = render_with("--set", "dashboard.labels.grafana_dashboard=1")
    assert refused.returncode != 0
    assert "/dashboard/labels/grafana_dashboard" in refused.stderr, refused.stderr
