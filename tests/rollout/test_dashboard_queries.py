"""Every panel of the chart's Grafana dashboard returns series from a real Prometheus scraping real services.

A local stack (two `bentoml serve` processes behind the weighted router, a local Prometheus) runs a real
canary rollout under steady traffic, and the controller's own metrics are served from this process. Both
model services get ground-truth feedback for some of their answers (the live quality row) and a real trigger
receiver gets one firing drift alert (the triggers row). The targets are labelled as the chart's
ServiceMonitors label them in a cluster (`namespace`, the Service name
`<release>-stable|canary|rollout|trigger-receiver`, `track`), so the dashboard's PromQL runs unchanged: only
Grafana's template variables are substituted, with this stack's values.

The rollout serves a binary classifier (breast cancer): every panel has series there, the MAE target of "Live log
loss / MAE per version" excepted (a regressor's). A second test serves a regressor (diabetes) with its own
feedback: its MAE and labelled rows answer, and the classification targets stay empty.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient
from prometheus_client import CollectorRegistry, start_http_server

from components.common.tracking import PROMOTED
from pipelines.triggers.record import TriggerRecord
from pipelines.triggers.start import LocalStarter
from serving.dashboards.build import render as render_dashboard
from serving.embedded.local import LocalStack
from serving.embedded.prometheus_local import LocalPrometheus
from serving.embedded.train_drill import (
    BREAST_CANCER,
    DrillData,
    held_out_instances,
    register_drill_model,
    split_dataset,
)
from serving.model_service.live_quality import LiveQuality
from serving.model_service.settings import DEFAULT_FEEDBACK_MAX_AGE_S, ENV_PREDICTION_STORE
from serving.model_service.store import PredictionStore
from serving.rollout.core.observe import CANARY, STABLE
from serving.rollout.edges.query_prometheus import PrometheusSource
from tests.rollout.conftest import SEED, Registry, Rollout, needs_prometheus, traffic_for
from tests.triggers.conftest import MODEL as TRIGGER_MODEL
from tests.triggers.conftest import Receiver, alert, body, fake_command

pytestmark = [pytest.mark.integration, needs_prometheus]

NAMESPACE, RELEASE = "plinth-test", "plinth-dash"
# Two scrapes (500 ms apart) and some slack: what Grafana's $__rate_interval is to a 15 s scrape.
RATE_INTERVAL = "3s"
# Longer than the rollout: the feedback is posted before it starts.
QUALITY_WINDOW = "5m"
LABELLED_ROWS = 20
LABEL_TOKEN = "dashboard-labelling-token-0123"  # the services take labels only with a client's token
DIABETES = DrillData("sklearn:diabetes")
SPEC: dict[str, Any] = {
    "steps": [50, 100],
    "interval": "2s",
    "minRequests": 5,
    "progressDeadline": "90s",
    "shadow": {"enabled": False},
    # With alpha and minEffect the controller exports the check's evidence (interval, both sample sizes); loose
    # enough (n >= 20 a side with no 5xx) that the last step does not wait on it.
    "checks": [{"name": "success-rate", "min": 0.9, "failureLimit": 2, "alpha": 0.2, "minEffect": 0.2}],
}


class ClusterLabelledPrometheus(LocalPrometheus):
    """The local Prometheus, with every target labelled as the chart's ServiceMonitor labels it in a cluster."""

    def __init__(self, workdir: Path, others: Mapping[str, str]) -> None:
        self.others = others
        super().__init__(workdir)

    def set_targets(self, tracks: Mapping[str, str]) -> None:
        """Scrape both tracks as `<release>-<track>`, and each other address as `<release>-<its suffix>`."""
        services = [(url.removeprefix("http://").rstrip("/"), {"track": track}, track) for track, url in tracks.items()]
        others: list[tuple[str, dict[str, str], str]] = [
            (address, {}, suffix) for suffix, address in self.others.items()
        ]
        groups = [
            {"targets": [address], "labels": {**labels, "namespace": NAMESPACE, "service": f"{RELEASE}-{suffix}"}}
            for address, labels, suffix in [*services, *others]
        ]
        staging = self.targets_file.with_suffix(".tmp")
        staging.write_text(json.dumps(groups))
        staging.replace(self.targets_file)


class LiveExporter:
    """The live-quality exporter (its collector, as `python -m serving.model_service.live_quality` serves it),
    reading the services' store twice a second; scraped as `<release>-live-quality`, as the chart runs it."""

    def __init__(self, store: Path) -> None:
        self.store = PredictionStore(str(store), DEFAULT_FEEDBACK_MAX_AGE_S)
        self.collector = LiveQuality(self.store, {"1h": 3600.0})
        registry = CollectorRegistry()
        registry.register(self.collector)
        self.server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
        self.address = f"127.0.0.1:{self.server.server_port}"
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(0.5):
            self.collector.refresh()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.server.shutdown()
        self.store.close()


@pytest.fixture
def live_exporter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveExporter]:
    """The services inherit this process's environment: their predictions go to the test's store."""
    store = tmp_path / "predictions.sqlite"
    monkeypatch.setenv(ENV_PREDICTION_STORE, str(store))
    monkeypatch.setenv("PLINTH_FEEDBACK_TOKENS", f"dashboard={LABEL_TOKEN}")  # the client label_answers is
    exporter = LiveExporter(store)
    yield exporter
    exporter.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    """A trigger receiver on its own SQLite registry, starting a command that exits at once."""
    uri = f"sqlite:///{tmp_path / 'triggers.db'}"
    record = TriggerRecord(MlflowClient(tracking_uri=uri, registry_uri=uri), TRIGGER_MODEL)
    running = Receiver(record, LocalStarter(tmp_path / "trigger-logs", fake_command(tmp_path)))
    yield running
    running.close()


@pytest.fixture
def stack(
    registry: Registry, receiver: Receiver, live_exporter: LiveExporter, tmp_path: Path
) -> Iterator[tuple[Registry, LocalStack]]:
    own = registry.fork("dashboard-queries")
    controller, _ = start_http_server(0, addr="127.0.0.1")
    others = {
        "rollout": f"127.0.0.1:{controller.server_port}",
        "trigger-receiver": receiver.url.removeprefix("http://"),
        "live-quality": live_exporter.address,
    }
    local = LocalStack(own.model, own.uri, tmp_path, metrics="prometheus")
    local.prometheus = ClusterLabelledPrometheus(tmp_path / "prometheus", others)
    local.source = PrometheusSource(local.prometheus.url)
    try:
        yield own, local.start(own.champion)
    finally:
        local.close()
        controller.shutdown()
        controller.server_close()


def label_answers(url: str, source: PrometheusSource, data: DrillData = BREAST_CANCER) -> None:
    """Predict held-out rows on one service, then post each answer's truth as feedback (a label or a value).

    In two halves with a scrape between, so the live quality counters move between two samples (a series born
    at its first observation has no earlier sample to rate from).
    """
    rows = held_out_instances(SEED, data)[:LABELLED_ROWS]
    truth = split_dataset(SEED, data)[1][data.target].head(LABELLED_ROWS).tolist()
    answer = httpx.post(f"{url}/predict", json={"instances": rows}, timeout=30)
    assert answer.status_code == 200, answer.text
    for index, (prediction, known) in enumerate(zip(answer.json()["predictions"], truth, strict=True)):
        if index == LABELLED_ROWS // 2:
            wait_for_scrapes(source, after=time.time())
        field = "value" if "prediction" in prediction else "label"
        body = {"request_id": prediction["request_id"], field: known}
        posted = httpx.post(f"{url}/feedback", json=body, headers={"Authorization": f"Bearer {LABEL_TOKEN}"})
        assert posted.status_code == 200, posted.text
        assert posted.json()["result"] == "accepted"


def substitute(expr: str, seconds: float) -> str:
    """Replace Grafana's template variables with this stack's values; no variable may be left."""
    values = {
        "$namespace": NAMESPACE,
        "$release": RELEASE,
        "$__rate_interval": RATE_INTERVAL,
        "$quality_window": QUALITY_WINDOW,
    }
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


def test_every_panel_returns_series_from_a_rollout_on_real_services(
    stack: tuple[Registry, LocalStack], receiver: Receiver
) -> None:
    registry, local = stack
    assert local.prometheus is not None
    prometheus = PrometheusSource(local.prometheus.url)
    start = time.time()
    traffic = traffic_for(local, held_out_instances(SEED))
    try:
        version = registry.copy(registry.good)
        canary = local.deploy_canary(version)
        for process in (local.stable, canary):  # one refusal per track, for the 4xx panel
            assert process is not None
            assert httpx.post(f"{process.url}/predict", json={"instances": [{"no such feature": 1}]}).status_code == 400
            label_answers(process.url, prometheus)
        drift = {**alert("x"), "labels": {**alert("x")["labels"], "model": TRIGGER_MODEL}}
        [fired] = httpx.post(f"{receiver.url}/alerts", content=body(drift), headers=receiver.headers).json()["outcomes"]
        assert fired["decision"] == "start", fired
        outcome = Rollout(local, registry, version, spec=SPEC).start().result()
        assert outcome.status == PROMOTED, outcome.reason
    finally:
        traffic.stop()
    url = local.prometheus.url
    wait_for_scrapes(prometheus, after=time.time())
    end = time.time()
    dashboard = json.loads(render_dashboard())  # what `python -m serving.dashboards` writes (test_dashboard.py)
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
    # The success-rate comparison's evidence: an interval around canary - stable, both sides counted, no regression.
    evidence = {
        one["metric"]["quantity"]: float(one["value"][1])
        for one in series["Check evidence (latest)"]
        if one["metric"]["check"] == "success-rate"
    }
    assert evidence["lower"] <= evidence["difference"] <= evidence["upper"], evidence
    assert min(evidence["canary_samples"], evidence["stable_samples"]) > 0, evidence
    assert (evidence["alpha"], evidence["regression"]) == (0.2, 0), evidence
    lines = {(one["metric"]["check"], one["metric"]["quantity"]) for one in series["Check evidence: canary - stable"]}
    assert {("success-rate", quantity) for quantity in ("difference", "lower", "upper")} <= lines, lines
    # Both tracks' labelled rows read back as an accuracy, and the drift alert as a started run (the counter is
    # this process's: other tests of the session may have counted more).
    accuracy = [float(value) for one in series["Live accuracy per version"] for _, value in one["values"]]
    assert max(value for value in accuracy if math.isfinite(value)) > 0.8, accuracy
    decisions = series["Trigger decisions"]
    started = [
        float(one["value"][1]) for one in decisions if one["metric"] == {"kind": "input_drift", "decision": "start"}
    ]
    assert sum(started) >= 1, decisions


def panel_targets(titles: set[str]) -> dict[tuple[str, str], dict]:
    """Return the dashboard's targets of the panels titled `titles`, by (panel title, refId)."""
    dashboard = json.loads(render_dashboard())
    return {
        (panel["title"], target["refId"]): target
        for panel in dashboard["panels"]
        if panel["title"] in titles
        for target in panel["targets"]
    }


def test_the_live_quality_panels_read_a_regressor(tmp_path: Path, live_exporter: LiveExporter) -> None:
    uri, model = f"sqlite:///{tmp_path / 'mlflow.db'}", "dashboard-regression"
    version = register_drill_model(uri, model, seed=SEED, data=DIABETES)
    local = LocalStack(model, uri, tmp_path, metrics="prometheus")
    local.prometheus = ClusterLabelledPrometheus(tmp_path / "prometheus", {"live-quality": live_exporter.address})
    source = PrometheusSource(local.prometheus.url)
    local.source = source
    try:
        local.start(version)
        assert local.stable is not None
        label_answers(local.stable.url, source, DIABETES)
        titles = {"Live accuracy per version", "Live log loss / MAE per version", "Labelled rows per second"}
        found: dict[tuple[str, str], list[dict[str, Any]]] = {}
        deadline = time.monotonic() + 30
        # A readiness poll: on a loaded machine the exporter's read of the store can land a scrape later.
        while time.monotonic() < deadline and not found.get(("Labelled rows per second", "A")):
            wait_for_scrapes(source, after=time.time())
            # Whole seconds back from now: the range query's last step is `end`, after the last scrape.
            end = time.time()
            found = {key: query(source.url, target, end - 60, end) for key, target in panel_targets(titles).items()}
    finally:
        local.close()
    # A regressor has no classification series: accuracy and log loss stay empty, MAE and labelled rows answer.
    assert {key for key, series in found.items() if series} == {
        ("Live log loss / MAE per version", "B"),
        ("Labelled rows per second", "A"),
    }
    [mae] = found[("Live log loss / MAE per version", "B")]
    assert mae["metric"] == {"model_version": version}  # one exporter, per version whichever track answered
    assert max(float(value) for _, value in mae["values"] if value != "NaN") > 0
