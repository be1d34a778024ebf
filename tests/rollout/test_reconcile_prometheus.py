"""The reconcile loop against a real Prometheus: its windows, a rollback, a restart and a promotion.

tests/rollout/test_reconcile.py drives the Reconciler with a scripted metrics source that stands in for
Prometheus and answers each interval afresh. Here the same loop reads the real `PrometheusSource` from a real
local Prometheus that scrapes two stand-in "pods" exporters (one per track) every 500 ms. Each exporter meters,
in the model service's metric names and labels, whatever version the fake cluster says that Deployment's pods
serve right now, under steady traffic split by the route's weights. This proves the loop's window semantics
against the real thing: a judged interval sees only scrapes taken after the previous tick, new pods' counters
and series replace the old ones, and a controller restarted at 100 % (where the stable is idle) promotes on
fresh windows and the baseline its predecessor recorded.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from components.common.tracking import CHAMPION, REJECTED_TAG
from serving.embedded.prometheus_local import LocalPrometheus
from serving.model_service.monitor import PROBABILITY_BUCKETS
from serving.rollout.core.observe import CANARY, PREDICT_ENDPOINT, STABLE
from serving.rollout.core.reconcile import Reconciler
from serving.rollout.core.spec import parse_spec
from serving.rollout.edges.query_prometheus import PrometheusSource
from serving.rollout.tests.fake_cluster import FakeCluster
from tests.rollout.conftest import needs_prometheus
from tests.rollout.test_reconcile import ENV, World
from tests.rollout.versions import MODEL, Versions

pytestmark = [pytest.mark.integration, needs_prometheus]

SPEC = parse_spec(
    {
        "steps": [25, 50, 100],
        "interval": "2s",
        "minRequests": 20,
        "progressDeadline": "5m",
        "shadow": {"enabled": False},  # the weighted steps; shadow scenarios turn it on
        "checks": [
            {"name": "success-rate", "min": 0.99, "failureLimit": 2},
            {"name": "prediction-divergence", "max": 0.1, "minPredictions": 40, "failureLimit": 2},
            {"name": "input-drift", "max": 0.25, "minPredictions": 40, "failureLimit": 2},
        ],
    }
)
RATE = 100.0  # predictions per second over both tracks, split by the route's weights
SCRAPE_WAIT_S = 20.0


class Pods:
    """One Deployment's pods serving `version`, metered as the model service does (a registry of their own)."""

    def __init__(self, version: str, bad: bool) -> None:
        self.version, self.bad, self.answered = version, bad, 0
        self.registry = CollectorRegistry()
        labels = ["endpoint", "service_name", "http_response_code"]
        own = self.registry
        requests = Counter("bentoml_service_request", "Requests.", labels, registry=own)
        duration = Histogram("bentoml_service_request_duration_seconds", "Duration.", labels, registry=own)
        classes = Counter("plinth_predicted_class", "Instances per class.", ["class"], registry=own)
        probability = Histogram(
            "plinth_prediction_probability", "P(class).", ["class"], buckets=PROBABILITY_BUCKETS, registry=own
        )
        # Every series exists from the first scrape, at 0, as increase() needs.
        self.ok, self.failed = (requests.labels(PREDICT_ENDPOINT, "ModelService", code) for code in ("200", "500"))
        self.timed = duration.labels(PREDICT_ENDPOINT, "ModelService", "200")
        self.negative, self.positive = classes.labels("0"), classes.labels("1")
        self.probability = probability.labels("1")
        drift = Gauge("plinth_input_drift_psi", "PSI per feature.", ["feature"], registry=own)
        for feature in ("mean radius", "mean texture"):
            drift.labels(feature).set(0.05)
        labels = ["model_name", "model_version", "task", "drift"]
        info = Gauge("plinth_model_info", "Served model.", labels, registry=own)
        info.labels(MODEL, version, "binary", "on").set(1)

    def answer(self) -> None:
        """Answer one prediction: a bad version fails every other request; a good one predicts 3 in 5 positive."""
        self.answered += 1
        if self.bad and self.answered % 2:
            self.failed.inc()
            return
        self.ok.inc()
        self.timed.observe(0.02)
        positive = self.answered % 5 < 3
        (self.positive if positive else self.negative).inc()
        self.probability.observe(0.85 if positive else 0.15)


class Fleet:
    """Both Deployments' pods as the fake cluster runs them: a /metrics each, and traffic as the route splits it."""

    def __init__(self, cluster: FakeCluster, bad: set[str]) -> None:
        self.cluster, self.bad = cluster, bad
        self.lock, self.stopping = threading.Lock(), threading.Event()
        self.running: dict[str, Pods] = {}
        tracks = ((STABLE, cluster.stable), (CANARY, cluster.canary))
        self.servers = {track: self.exporter(name) for track, name in tracks}
        for run in (*(server.serve_forever for server in self.servers.values()), self.play):
            threading.Thread(target=run, daemon=True).start()

    def urls(self) -> dict[str, str]:
        return {track: f"http://127.0.0.1:{server.server_address[1]}" for track, server in self.servers.items()}

    def pods(self, deployment: str) -> Pods | None:
        """Return the pods of `deployment` now: new pods (fresh counters) whenever the served version changes."""
        with self.lock:
            version, pods = self.cluster.serving[deployment], self.running.pop(deployment, None)
            if version is None:
                return None
            if pods is None or pods.version != version:
                pods = Pods(version, version in self.bad)
            self.running[deployment] = pods
            return pods

    def exporter(self, deployment: str) -> ThreadingHTTPServer:
        fleet = self

        class Metrics(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                pods = fleet.pods(deployment)
                body = generate_latest(pods.registry) if pods else b"no pods\n"
                self.send_response(200 if pods else 503)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: one line per scrape would drown the test's output."""

        return ThreadingHTTPServer(("127.0.0.1", 0), Metrics)

    def play(self) -> None:
        """Send RATE predictions per second, split as the route's weights say, to whichever pods exist."""
        owed = {self.cluster.stable: 0.0, self.cluster.canary: 0.0}
        last = time.monotonic()
        while not self.stopping.wait(0.05):
            now = time.monotonic()
            canary = self.cluster.weights()[self.cluster.canary] / 100
            for deployment, share in ((self.cluster.stable, 1 - canary), (self.cluster.canary, canary)):
                pods = self.pods(deployment)
                owed[deployment] = owed[deployment] + RATE * share * (now - last) if pods else 0.0
                while pods and owed[deployment] >= 1:
                    pods.answer()
                    owed[deployment] -= 1
            last = now

    def close(self) -> None:
        self.stopping.set()
        for server in self.servers.values():
            server.shutdown()
            server.server_close()


class Scrapes:
    """Paces ticks by Prometheus: one interval after the last tick, and a scrape of both tracks taken since."""

    def __init__(self, source: PrometheusSource) -> None:
        self.source, self.since = source, time.time()

    def wait(self) -> None:
        after = self.since + SPEC.interval
        time.sleep(max(0.0, after - time.time()))
        deadline, latest = time.monotonic() + SCRAPE_WAIT_S, [float("nan")]
        while time.monotonic() < deadline:
            latest = [self.source.scalar(f'max(timestamp(up{{track="{track}"}}))') for track in (STABLE, CANARY)]
            if all(stamp > after for stamp in latest):
                return
            time.sleep(0.1)
        raise AssertionError(f"no scrape of both tracks after {after:.1f} within {SCRAPE_WAIT_S}s (latest {latest})")


class PacedReconciler(Reconciler):
    """The Reconciler as `run()` ticks it (an interval apart), but each tick also waits for Prometheus."""

    scrapes: Scrapes

    def tick(self) -> None:
        self.scrapes.wait()
        try:
            super().tick()
        finally:
            self.scrapes.since = time.time()


class LiveWorld(World):
    """test_reconcile's World whose controllers read the real Prometheus, paced by its scrapes."""

    def __init__(self, registry: Versions, prometheus: str) -> None:
        self.live = PrometheusSource(prometheus)
        self.scrapes = Scrapes(self.live)
        super().__init__(registry)

    def restart(self) -> Reconciler:
        """A new controller pod, with the edge and registry World builds and the Prometheus source."""
        built = super().restart()
        paced = PacedReconciler(SPEC, built.view, self.live, built.registry, MODEL, ENV, on_line=self.lines.append)
        paced.scrapes = self.scrapes
        self.controller = paced
        return paced


@pytest.fixture
def live(versions: Versions, tmp_path: Path) -> Iterator[LiveWorld]:
    registry = versions
    prometheus = LocalPrometheus(tmp_path / "prometheus").start().wait_ready()
    try:
        world = LiveWorld(registry, prometheus.url)
        fleet = Fleet(world.cluster, bad={registry.garbage})
        try:
            prometheus.set_targets(fleet.urls())
            yield world
        finally:
            fleet.close()
    finally:
        prometheus.stop()
        registry.forget_rollouts()


def test_the_loop_on_prometheus_windows_rolls_back_resumes_after_a_restart_and_promotes(live: LiveWorld):
    world, registry = live, live.registry
    world.ticks(1)
    world.assert_serving(registry.champion)

    world.cluster.set_desired(registry.garbage)
    world.until("failed", limit=4)
    world.assert_serving(registry.champion)
    reason = world.cluster.state()["rejected"][registry.garbage]
    found = re.fullmatch(r"success-rate failed 2 time\(s\) \(failureLimit 2\): ([\d.]+) \(min 0\.99\)", reason)
    assert found, reason
    assert 0.4 < float(found[1]) < 0.6  # half the garbage's requests answered 500, as Prometheus counted them
    tags = registry.tags(registry.garbage)
    assert tags[f"plinth.rollout.{ENV}.status"] == "rolled_back"
    assert tags[f"plinth.rollout.{ENV}.reason"] == reason
    assert tags[REJECTED_TAG] == "true"
    assert (world.started(), world.judged()) == (1, 2)

    world.cluster.set_desired(registry.good)
    world.ticks(3)  # started at 25 %; 25 % and 50 % judged on windows of the good version's pods: at 100 %
    assert (world.phase(), world.cluster.weights()[world.cluster.canary]) == ("progressing", 100)
    assert world.judged() == 4
    # Restarted at the last step: the stable gets no traffic now, so the predictions it is compared with
    # exist only in the record the previous controller wrote.
    world.restart()
    world.ticks(1)
    assert world.cluster.state()["resumed"] == 1
    assert world.judged() == 4  # the resuming tick judges nothing
    # The record carried the stable's requests and duration histogram as Prometheus counted them: the
    # anytime-valid comparisons continue from them (every answer took 20 ms: all within the 0.025 s bucket).
    stable = world.controller.analysis.baseline.stable_traffic
    assert stable.requests > 0
    assert stable.latency[0.025] == stable.latency[float("inf")] > 0
    world.until("succeeded", limit=3)
    assert world.judged() == 5  # 100 % judged on a window after the restart
    assert all(" advance (" in line for line in world.lines if " at 100%: " in line)
    world.assert_serving(registry.good)
    assert world.started() == 2
    assert registry.alias(CHAMPION) == registry.good
    assert registry.tags(registry.good)[f"plinth.rollout.{ENV}.status"] == "promoted"
    world.scrapes.wait()
    serving = world.live.query('last_over_time(plinth_model_info{track="stable"}[1s])')
    assert [series["metric"]["model_version"] for series in serving] == [registry.good]
