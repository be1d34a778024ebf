"""PrometheusSource reports live quality per model version from a real Prometheus scraping two exporters.

The stable's process serves version 1, the canary's version 2; the canary's page also carries labels of
version 1: a version's labels are summed over every page that exports them, whichever process that is (in a
cluster and on one machine that is the one live-quality exporter, which this test splits in two on purpose).

`increase` extrapolates to the window's end (up to half as much again over three scrapes), never below the
true increase of counters born at zero: the tests wait for at least the true labelled rows, which one
process alone cannot reach, and compare ratios of a Summary's sum to its count, which share one scrape (each
version's processes get the same accuracy or error, so a sum over differently extrapolated targets keeps it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.embedded.prometheus_local import LocalPrometheus
from serving.model_service.shadow_pairs import ShadowPairs
from serving.model_service.store import PredictionStore
from serving.rollout.core.observe import CANARY, STABLE, Observation
from serving.rollout.core.paired import PairCounts
from serving.rollout.edges.query_prometheus import PrometheusSource
from serving.rollout.tests.live_exporter import LiveExporter
from tests.rollout.conftest import needs_prometheus

pytestmark = [pytest.mark.integration, needs_prometheus]


class Stack:
    """Prometheus scraping one exporter per track, and the source reading it."""

    def __init__(self, workdir: Path, task: str) -> None:
        self.stable = LiveExporter("1", task, ["1"])
        self.canary = LiveExporter("2", task, ["1", "2"])
        self.prometheus = LocalPrometheus(workdir)
        self.source = PrometheusSource(self.prometheus.url)
        self.started = time.time()

    def start(self) -> None:
        """Serve both exporters, start Prometheus, and wait until it has scraped each twice."""
        urls = {STABLE: self.stable.serve(), CANARY: self.canary.serve()}
        self.prometheus.start()
        self.prometheus.set_targets(urls)
        for track, url in urls.items():
            assert self.source.wait_for_target(track, url.removeprefix("http://")), f"{track} never scraped"

    def observe(self) -> Observation:
        """Read both tracks over a window that covers the exporters' whole life."""
        return self.source.observe(time.time() - self.started + 2.0)

    def wait_for(self, stable: float, canary: float, timeout: float = 20.0) -> Observation:
        """Poll until both tracks report at least these labelled rows (the last increments were scraped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.observe()
            if found.stable.live.labelled >= stable and found.canary.live.labelled >= canary:
                return found
            time.sleep(0.25)
        raise AssertionError(f"labelled rows never reached {stable}/{canary}: {self.observe()}")

    def close(self) -> None:
        self.prometheus.stop()
        self.stable.close()
        self.canary.close()


@pytest.fixture
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path, getattr(request, "param", "binary"))
    try:
        running.start()
        yield running
    finally:
        running.close()


def test_accuracy_rows_are_counted_by_version_whichever_process_exported_them(stack: Stack, tmp_path: Path) -> None:
    # The live-quality process's shadow pairs (joined from the store) for canary 2 against stable 1, and a
    # pair of other versions that must not be read.
    shadow = ShadowPairs(PredictionStore(str(tmp_path / "unused.sqlite"), 3600))
    pairs = PairCounts(40, 8, {("contract_type", "monthly"): [25, 6]}, {"canary_missing": 3}, {"stable_only": 2})
    shadow.counts = {("live-model", "2", "1"): pairs, ("live-model", "3", "1"): PairCounts(7, 7)}
    stack.canary.registry.register(shadow)
    stack.stable.classified("1", right=9, wrong=1)
    stack.canary.classified("1", right=27, wrong=3)
    stack.canary.classified("2", right=12, wrong=8)
    # Version 1 reaches 40 rows only with the canary's process's 30; version 2 at 0.6 and version 1 at 0.9
    # show that no process's rows went to the other version.
    found = stack.wait_for(stable=40, canary=20)
    assert found.stable.model_version == "1"
    assert found.canary.model_version == "2"
    assert found.stable.live.accuracy == pytest.approx(0.9, abs=0.01)
    assert found.canary.live.accuracy == pytest.approx(0.6, abs=0.01)
    assert math.isnan(found.canary.live.mae)
    assert found.pairs == pairs  # the controller's read of the cluster's pairing (`PrometheusSource.stored_pairs`)
    # No series for a pair yet: no pairs so far (a listed shadow-churn check holds), never "not applicable".
    assert stack.source.stored_pairs("1", "9", "1m") == PairCounts()


@pytest.mark.parametrize("stack", ["regression"], indirect=True)
def test_absolute_errors_are_counted_by_version(stack: Stack) -> None:
    stack.stable.regressed("1", [2.0] * 10)
    stack.canary.regressed("1", [2.0] * 10)
    stack.canary.regressed("2", [5.0] * 30)
    found = stack.wait_for(stable=20, canary=30)
    assert found.stable.live.mae == pytest.approx(2.0, abs=0.05)
    assert found.canary.live.mae == pytest.approx(5.0, abs=0.05)
    assert math.isnan(found.stable.live.accuracy)
