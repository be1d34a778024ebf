"""No single /predict request steers drift: one request of 1,000 shifted rows fires nothing, 60 requests do.

The attack: the drift window was 500 rows per worker, so one out-of-distribution request of 1,000 rows filled
it, the PSI gauge crossed the chart's `PlinthInputDrift` threshold (a retrain, one of the day's few) and every
canary's input-drift check failed. Now a request adds at most PLINTH_DRIFT_ROWS_PER_REQUEST sampled rows and
the PSI is published only once the window spans PLINTH_DRIFT_MIN_REQUESTS requests. The scenario runs a real
`bentoml serve`, scrapes it, and judges what it exports with the chart's own alert rule (`promtool test
rules` on the rendered PrometheusRule) and with the rollout's own analysis (`scrape_metrics` + `Analysis`).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from serving.bench.demo_model import RegisteredModel
from serving.model_service import drift, per_request, registry, settings
from serving.model_service.columns import FrameBuilder
from serving.rollout.core.analyse import Analysis
from serving.rollout.core.observe import Observation
from serving.rollout.core.results import FAIL, NO_DATA
from serving.rollout.core.spec import parse_spec
from serving.rollout.edges.scrape_metrics import parse_snapshot, summarise
from tests.k8s.k8s_tooling import named, render

from .conftest import env_for, running_server

MAX_PSI = 0.25


def shifted(model: RegisteredModel, rows: int, start: int = 0) -> list[dict[str, Any]]:
    """`rows` training rows (cycled) with every feature tripled: far outside the training distribution."""
    base = model.instances()
    return [{k: v * 3.0 for k, v in base[(start + i) % len(base)].items()} for i in range(rows)]


def post(url: str, instances: list[dict[str, Any]]) -> None:
    response = httpx.post(f"{url}/predict", json={"instances": instances}, timeout=60)
    assert response.status_code == 200, response.text[:300]


def psi_of(page: str) -> dict[str, float]:
    """Return the scraped PSI per feature (empty while the gauge is absent)."""
    found = re.findall(r'^plinth_input_drift_psi\{feature="([^"]+)"\} (\S+)$', page, flags=re.MULTILINE)
    return {feature: float(value) for feature, value in found}


def chart_rule_fires(page: str, workdir: Path) -> bool:
    """Feed the scraped PSI, as a canary pod's series, to the chart's rules; return whether PlinthInputDrift fires.

    `promtool test rules` expects no alert; a run that fails only because the alert fired says so (`got:`).
    """
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`): the alert rule cannot be evaluated")
    rule = named(render("default"), "PrometheusRule", "release-plinth-serving")
    [expr] = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"] if r.get("alert") == "PlinthInputDrift"]
    namespace = re.search(r'namespace="([^"]+)"', expr).group(1)  # type: ignore[union-attr]
    service = re.search(r'service=~"([^"]+)"', expr).group(1).replace("(stable|canary)", "canary")  # type: ignore[union-attr]
    selector = f'namespace="{namespace}", service="{service}", track="canary"'
    inputs = [
        {"series": f'plinth_input_drift_psi{{{selector}, feature="{feature}"}}', "values": f"{value!r}x40"}
        for feature, value in psi_of(page).items()
    ]
    inputs.append({"series": f"up{{{selector}}}", "values": "1x40"})  # the pod is scraped either way
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    test = {"interval": "1m", "input_series": inputs, "alert_rule_test": [
        {"eval_time": "30m", "alertname": "PlinthInputDrift", "exp_alerts": []}
    ]}  # fmt: skip
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [test]}
    (workdir / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = subprocess.run([promtool, "test", "rules", "tests.yaml"], cwd=workdir, capture_output=True, text=True)
    output = result.stdout + result.stderr
    if result.returncode == 0:
        return False
    assert "alertname: PlinthInputDrift" in output, output  # failed for the alert, not for a broken rule file
    assert 'alertname="PlinthInputDrift"' in output.partition("got:")[2], output
    return True


def canary_drift_status(page: str) -> str:
    """Return the rollout's input-drift verdict on a canary that exports `page` (stable: the same page)."""
    snapshot = parse_snapshot(page)
    track = summarise(snapshot, snapshot)
    spec = parse_spec(
        {"steps": [10, 100], "interval": "1s", "minRequests": 1, "checks": [{"name": "input-drift", "max": MAX_PSI}]}
    )
    verdict = Analysis(spec).judge(Observation(stable=track, canary=track))
    return {result.name: result.status for result in verdict.results}["input-drift"]


@pytest.mark.integration
def test_one_big_shifted_request_fires_nothing_sixty_shifted_requests_do(
    registered: RegisteredModel, tmp_path: Path
) -> None:
    with running_server(env_for(registered), tmp_path / "server") as server:
        post(server.url, shifted(registered, 1000))  # one caller, 1,000 rows: twice the drift window
        one = httpx.get(f"{server.url}/metrics", timeout=10).text
        for request in range(60):  # 60 callers, 10 rows each
            post(server.url, shifted(registered, 10, start=10 * request))
        many = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert psi_of(one) == {}, "one request scores no drift: its window spans 1 request"
    assert not chart_rule_fires(one, tmp_path / "one")
    assert canary_drift_status(one) == NO_DATA  # absent never passes the canary's check either
    assert max(psi_of(many).values()) > MAX_PSI
    assert chart_rule_fires(many, tmp_path / "many")
    assert canary_drift_status(many) == FAIL


@pytest.fixture(scope="module")
def loaded(registered: RegisteredModel) -> Any:
    return registry.fetch(settings.Settings.from_env(env_for(registered)))


def batch_of(requests: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The rows of validated requests as the batcher concatenates them (each request's first row marked)."""
    return [row for rows in requests for row in per_request.marked_rows(rows)]


def test_one_request_adds_ten_sampled_rows_and_publishes_no_psi(registered: RegisteredModel, loaded: Any) -> None:
    inputs = drift.InputMonitor(loaded.columns, loaded.profile, 500, min_requests=50)
    requests = per_request.Requests(drift_cap=10, seed=3)
    rows = batch_of([shifted(registered, 1000)])
    segments: list[tuple[int, int, int]] = []
    for start in range(0, 1000, 256):  # the batcher cuts a request bigger than its batch: 256 + 256 + 256 + 232
        part = requests.split(rows[start : start + 256])
        kept, owners = per_request.drift_rows(part)
        inputs.observe(FrameBuilder(loaded.columns).build(rows[start : start + 256]), kept, owners)
        segments += [(start + s.start, start + s.stop, s.number) for s in part]
    assert {number for *_, number in segments} == {0}, "one request, whatever the batcher cut it into"
    assert (inputs.filled, inputs.spanned()) == (10, 1)
    assert inputs.drift == [], "no PSI gauge before the window spans 50 requests"
    assert len(per_request.log_rows(requests.split(batch_of([shifted(registered, 300)])), 100)) == 100


def test_the_drift_sample_is_spread_over_the_request_not_its_first_rows() -> None:
    requests = per_request.Requests(drift_cap=10, seed=3)
    segments: list[per_request.Segment] = []
    for _ in range(4):  # the same 1,000-row request, cut in four
        rows = [{"x": 0}] * 250
        if not segments:
            rows[0] = per_request.RequestStart(rows[0], 1000)
        segments += requests.split(rows)
    kept = [s.offset + int(i) - s.start for s in segments for i in per_request.drift_rows([s])[0]]
    assert len(kept) == 10
    assert max(kept) >= 250, "rows from later parts of the request are sampled too"
    assert per_request.log_rows(segments[:1], 100) == list(range(100))
    assert per_request.log_rows(segments[1:2], 100) == []  # the rest of the request: past its first 100 rows


def test_a_batch_of_many_requests_counts_each_and_a_full_window_publishes(
    registered: RegisteredModel, loaded: Any
) -> None:
    inputs = drift.InputMonitor(loaded.columns, loaded.profile, 500, min_requests=50)
    rows = batch_of([shifted(registered, 10, start=10 * request) for request in range(60)])  # 60 concurrent requests
    kept, owners = per_request.drift_rows(per_request.Requests(drift_cap=10).split(rows))
    inputs.observe(FrameBuilder(loaded.columns).build(rows), kept, owners)
    assert inputs.filled == 500
    assert inputs.spanned() == 50  # the window's 500 rows: the last 50 requests' 10 each
    assert len(inputs.drift) == len(inputs.features)
    assert float(np.max(inputs.psi())) > MAX_PSI
    assert not math.isnan(float(np.max(inputs.psi())))
