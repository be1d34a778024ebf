"""The embedded default: two `bentoml serve` processes, the weighted router and a metrics source.

The metrics source is a local Prometheus when installed, otherwise the services' /metrics read directly.

`LocalStack` is also the local `TrafficEdge`. Promotion hands the stable role to the canary process, which
already serves the new version and is ready: the router points new requests at it, the old stable drains
its in-flight requests and only then stops, so no request is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType

from serving.embedded.prometheus_local import LocalPrometheus, prometheus_binary
from serving.embedded.services import Chaos, LiveQualityProcess, ModelProcess
from serving.rollout.core.observe import CANARY, STABLE, MetricsSource
from serving.rollout.edges.mirror import PairedSource
from serving.rollout.edges.pre_traffic import ReferenceRows, check_canary
from serving.rollout.edges.query_prometheus import PrometheusSource
from serving.rollout.edges.router import WeightedRouter
from serving.rollout.edges.scrape_metrics import LIVE, ScrapeSource

LOG = logging.getLogger("plinth.rollout")
# auto: a local Prometheus when the binary is installed, else the services' /metrics read directly.
METRICS_CHOICES = ("auto", "prometheus", "direct")


class LocalStack(AbstractContextManager["LocalStack"]):
    """Everything a local rollout runs, started in order and stopped in reverse."""

    def __init__(
        self,
        model_name: str,
        tracking_uri: str,
        workdir: Path,
        metrics: str = "auto",
        router_port: int = 0,
        extra_scrape: dict[str, str] | None = None,
        retry_on_stable: bool = True,
        rule_files: Sequence[Path] = (),
        alertmanager: str | None = None,
    ) -> None:
        self.model_name = model_name
        self.retry_on_stable = retry_on_stable
        self.tracking_uri = tracking_uri
        self.workdir = workdir
        self.stable: ModelProcess | None = None
        self.canary: ModelProcess | None = None
        self.prometheus: LocalPrometheus | None = None
        self.router: WeightedRouter | None = None
        self.router_port = router_port
        # Live quality comes from the labels in the shared store, through its one exporter, as in a cluster.
        self.live_quality = LiveQualityProcess(workdir / "logs")
        use_prometheus = metrics == "prometheus" or (metrics == "auto" and prometheus_binary() is not None)
        if metrics == "auto" and not use_prometheus:
            LOG.warning("prometheus binary not found: reading the services' /metrics directly instead")
        self.scrape: ScrapeSource | None = None
        self.source: MetricsSource
        if use_prometheus:
            scrape = {**(extra_scrape or {}), "plinth-live-quality": self.live_quality.url.removeprefix("http://")}
            self.prometheus = LocalPrometheus(
                workdir / "prometheus", scrape, rule_files=rule_files, alertmanager=alertmanager
            )
            self.source = PrometheusSource(self.prometheus.url)
        else:
            self.scrape = self.source = ScrapeSource({LIVE: self.live_quality.url})
        # Plus the shadow phase's paired answers, read from the router's mirror in this process.
        self.metrics = self.source
        self.source = PairedSource(self.metrics, lambda: self.router.mirror if self.router else None)

    @property
    def url(self) -> str:
        """Return the router's URL, where clients send their requests."""
        if self.router is None:
            raise RuntimeError("the local stack is not started")
        return self.router.url

    def start(self, stable_version: str) -> LocalStack:
        """Start Prometheus (if used), the stable service and the router in front of it."""
        if self.prometheus is not None:
            self.prometheus.start().wait_ready()
        self.live_quality.start().wait_ready()
        logs = self.workdir / "logs"
        stable = ModelProcess(STABLE, self.model_name, stable_version, self.tracking_uri, logs)
        self.stable = stable
        stable.start().wait_ready()
        self.router = WeightedRouter(stable.url, port=self.router_port, retry_on_stable=self.retry_on_stable).start()
        self.retarget()
        return self

    def deploy_canary(self, version: str, chaos: Chaos | None = None) -> ModelProcess:
        """Start a canary service at weight 0 and wait until it is ready."""
        self.canary = ModelProcess(CANARY, self.model_name, version, self.tracking_uri, self.workdir / "logs", chaos)
        self.canary.start().wait_ready()
        assert self.router is not None
        self.router.set_backend(CANARY, self.canary.url)
        self.retarget()
        address = self.canary.url.removeprefix("http://")
        if isinstance(self.metrics, PrometheusSource) and not self.metrics.wait_for_target(CANARY, address):
            LOG.warning("prometheus has not scraped the canary yet: the first interval may have no data")
        return self.canary

    def retarget(self) -> None:
        """Tell the metrics source which process is which track."""
        tracks = {track: proc.url for track, proc in ((STABLE, self.stable), (CANARY, self.canary)) if proc}
        if self.prometheus is not None:
            self.prometheus.set_targets(tracks)
        if self.scrape is not None:
            for track in (STABLE, CANARY):
                self.scrape.set_url(track, tracks.get(track, "http://127.0.0.1:9"))

    def set_weight(self, weight: int) -> None:
        """Edge: route `weight` percent of new requests to the canary."""
        assert self.router is not None
        self.router.set_weight(weight)

    def set_mirror(self, on: bool) -> None:
        """Edge: mirror the stable's requests to the canary (shadow phase), or stop."""
        assert self.router is not None
        self.router.set_mirror(on)

    def check_canary(self, reference: ReferenceRows) -> str | None:
        """Ask the canary its reference rows before any traffic: why it is refused, None when it passed."""
        if self.canary is None:
            return "no canary deployed"
        return check_canary(self.canary.url, reference)

    def promote(self) -> None:
        """Edge: the canary process becomes the stable; the old stable drains, then stops."""
        assert self.router is not None
        assert self.canary is not None
        assert self.stable is not None
        old, self.stable, self.canary = self.stable, self.canary, None
        self.router.set_backend(STABLE, self.stable.url)
        self.router.set_backend(CANARY, None)
        self.retarget()
        self.router.drain(old.url)
        old.stop()

    def rollback(self) -> None:
        """Edge: weight 0, the canary drains and stops; the stable keeps serving."""
        assert self.router is not None
        self.router.set_backend(CANARY, None)
        if self.canary is not None:
            self.router.drain(self.canary.url)
            self.canary.stop()
            self.canary = None
        self.retarget()

    def close(self) -> None:
        """Stop everything this stack started, router first so no request reaches a stopped service."""
        if self.router is not None:
            self.router.stop()
            self.router = None
        for proc in (self.canary, self.stable, self.live_quality, self.prometheus):
            if proc is not None:
                proc.stop()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Stop everything, also on errors and Ctrl-C."""
        self.close()
