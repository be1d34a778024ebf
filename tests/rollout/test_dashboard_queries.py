"""Every panel of the chart's Grafana dashboard returns series from a real Prometheus scraping real services.

A local stack (two `bentoml serve` processes behind the weighted router, a local Prometheus) runs a real
canary rollout under steady traffic, and the controller's own metrics are served from this process. The
targets are labelled as the chart's ServiceMonitor labels them in a cluster (`namespace`, the Service name
`<release>-stable|canary|rollout`, `track`), so the dashboard's PromQL runs unchanged: only Grafana's template
variables are substituted, with this stack's values.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import start_http_server

from serving.dashboards.__main__ import DASHBOARD
from serving.rollout.core.observe import CANARY, STABLE
from serving.rollout.core.record import PROMOTED
from serving.rollout.edges.query_prometheus import PrometheusSource
from serving.rollout.harness.local import LocalStack
from serving.rollout.harness.prometheus_local import LocalPrometheus
from serving.rollout.harness.train_drill import held_out_instances
from tests.rollout.conftest import SEED, Registry, Rollout, needs_prometheus, traffic_for

pytestmark = [pytest.mark.integration, needs_prometheus]

NAMESPACE, RELEASE = "plinth-test", "plinth-dash"
# Two scrapes (500 ms apart) and some slack: what Grafana's $__rate_interval is to a 15 s scrape.
RATE_INTERVAL = "3s"
SPEC: dict[str, Any] = {
    "steps": [50, 100],
    "interval": "2s",
    "minRequests": 5,
    "progressDeadline": "90s",
    "shadow": {"enabled": False},
    "checks": [{"name": "success-rate", "min": 0.9, "failureLimit": 2}],
}


class ClusterLabelledPrometheus(LocalPrometheus):
    """The local Prometheus, with every target labelled as the chart's ServiceMonitor labels it in a cluster."""

    def __init__(self, workdir: Path, controller: str) -> None:
        self.controller = controller
        super().__init__(workdir)

    def set_targets(self, tracks: Mapping[str, str]) -> None:
        """Scrape both tracks as `<release>-<track>` and the controller as `<release>-rollout`."""
        services = [(url.removeprefix("http://").rstrip("/"), {"track": track}, track) for track, url in tracks.items()]
        groups = [
            {"targets": [address], "labels": {**labels, "namespace": NAMESPACE, "service": f"{RELEASE}-{suffix}"}}
            for address, labels, suffix in [*services, (self.controller, {}, "rollout")]
        ]
        staging = self.targets_file.with_suffix(".tmp")
        staging.write_text(json.dumps(groups))
        staging.replace(self.targets_file)


@pytest.fixture
def stack(registry: Registry, tmp_path: Path) -> Iterator[tuple[Registry, LocalStack]]:
    own = registry.fork("dashboard-queries")
    controller, _ = start_http_server(0, addr="127.0.0.1")
    local = LocalStack(own.model, own.uri, tmp_path, metrics="prometheus")
    local.prometheus = ClusterLabelledPrometheus(tmp_path / "prometheus", f"127.0.0.1:{controller.server_port}")
    local.source = PrometheusSource(local.prometheus.url)
    try:
        yield own, local.start(own.champion)
    finally:
        local.close()
        controller.shutdown()
        controller.server_close()


def substitute(expr: str, seconds: float) -> str:
    """Replace Grafana's template variables with this stack's values; no variable may be left."""
    values = {"$namespace": NAMESPACE, "$release": RELEASE, "$__rate_interval": RATE_INTERVAL}
    values["$__range"] = f"{round(seconds)}s"
    for name, value in values.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, expr
    return expr


def query(url: str, target: dict, start: float, end: float) -> list[dict]:
    """Run a panel target as Grafana would (an instant or a range query) and return its series."""
    promql = substitute(target["expr"], end - start)
    if target.get("instant"):
        response = httpx.get(f"{url}/api/v1/query", params={"query": promql, "time": end})
    else:
        response = httpx.get(
            f"{url}/api/v1/query_range", params={"query": promql, "start": start, "end": end, "step": 1}
        )
    body = response.json()
    assert body["status"] == "success", (promql, body)
    series: list[dict] = body["data"]["result"]
    return series


def variable_values(url: str, variable: dict, start: float, end: float) -> set[str]:
    """Resolve a Grafana `label_values(selector, label)` variable query with its regex, as Grafana does."""
    found = re.fullmatch(r"label_values\((.+), (\w+)\)", substitute(variable["query"], 0))
    assert found, variable["query"]
    params = {"match[]": found[1], "start": start, "end": end}
    values = httpx.get(f"{url}/api/v1/label/{found[2]}/values", params=params).json()["data"]
    pattern = re.compile(variable.get("regex", "/(.+)/").strip("/"))
    return {found[1] for found in map(pattern.fullmatch, values) if found}


def wait_for_scrapes(source: PrometheusSource, after: float, timeout: float = 20.0) -> None:
    """Poll until Prometheus has scraped every live target after `after`: the last decision is in."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if source.scalar("min(timestamp(up))") > after:
            return
        time.sleep(0.1)
    raise AssertionError(f"prometheus scraped no target after {after:.1f} within {timeout}s")


def test_every_panel_returns_series_from_a_rollout_on_real_services(stack: tuple[Registry, LocalStack]) -> None:
    registry, local = stack
    assert local.prometheus is not None
    start = time.time()
    traffic = traffic_for(local, held_out_instances(SEED))
    try:
        version = registry.copy(registry.good)
        canary = local.deploy_canary(version)
        for process in (local.stable, canary):  # one refusal per track, for the 4xx panel
            assert process is not None
            assert httpx.post(f"{process.url}/predict", json={"instances": [{"no such feature": 1}]}).status_code == 400
        outcome = Rollout(local, registry, version, spec=SPEC).start().result()
        assert outcome.status == PROMOTED, outcome.reason
    finally:
        traffic.stop()
    url = local.prometheus.url
    wait_for_scrapes(PrometheusSource(url), after=time.time())
    end = time.time()
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert NAMESPACE in variable_values(url, variables["namespace"], start, end)
    assert variable_values(url, variables["release"], start, end) == {RELEASE}
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    series = {
        panel["title"]: [one for target in panel["targets"] for one in query(url, target, start, end)]
        for panel in panels
    }
    assert [title for title, found in series.items() if not found] == []
    by_track = [panel["title"] for panel in panels if any("{{track}}" in t["legendFormat"] for t in panel["targets"])]
    tracks = {title: {one["metric"].get("track") for one in series[title]} for title in by_track}
    assert {title: found for title, found in tracks.items() if not {STABLE, CANARY} <= found} == {}
    # What the rollout did reads back: the weight reached 100 % and the promotion was counted.
    weights = [float(value) for one in series["Canary weight"] for _, value in one["values"]]
    assert max(weights) == 100
    decided = {one["metric"]["result"]: float(one["value"][1]) for one in series["Rollout decisions"]}
    assert decided.get(PROMOTED, 0) >= 1, decided
