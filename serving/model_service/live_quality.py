"""Live quality from the prediction store: the one component that turns stored labels into metrics.

`python -m serving.model_service.live_quality --port 9108` reads PLINTH_PREDICTION_STORE every `--interval`
seconds and serves on /metrics, per model and version:

- `plinth_live_correct`, `plinth_live_log_loss`, `plinth_live_absolute_error`: summaries (`_sum`, `_count`)
  over every label in the store, kept as running totals: each refresh adds the labels with an id above the
  last one read (re-reading the last RESCAN ids, so a label committed late by a slower transaction is not
  skipped, and none is counted twice). The names and labels are those the serving pods exported before,
  so the rollout's live-quality check, the `PlinthLiveQualityLow` alert and the dashboard read them with
  `rate`/`increase`. Every version that wrote predictions has its task's series from the first refresh, at
  0 until its first label (a series born at its first label has no earlier sample to rate from). At start
  the totals begin with every label the store still holds (a restart is a
  counter reset, which `rate` and `increase` handle).
- `plinth_live_quality{metric, by, window}`: accuracy, log loss or MAE of the labels whose label time
  (`by="label_time"`) or prediction time (`by="prediction_time"`) lies within each `--windows` window, and
  `plinth_live_labelled_rows{by, window}` how many labels that is. A version with no label in a window has
  no series there.
- `plinth_live_quality_refresh_errors_total` and `plinth_live_quality_last_refresh_timestamp_seconds`: a
  store that cannot be read keeps the last values and counts the failure.

Run exactly one: a second one would export every label twice.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from components.common.duration import parse_duration
from serving.model_service.predictor import ServedTask
from serving.model_service.settings import feedback_max_age_s, prediction_store
from serving.model_service.shadow_pairs import ShadowPairs
from serving.model_service.store import BY_COLUMNS, Labelled, PredictionStore, StoreError, Window, shown

logger = logging.getLogger("plinth.live_quality")
DEFAULT_PORT = 9108
DEFAULT_INTERVAL_S = 30.0
DEFAULT_WINDOWS = "1h,1d,7d"
# Ids below the highest one read that are read again on each refresh (labels committed out of id order).
RESCAN = 10_000
READ_BATCH = 50_000
LABELS = ["model_name", "model_version"]
SUMMARIES = (
    ("plinth_live_correct", "correct", "1 per labelled classification prediction that was right, 0 per wrong one."),
    ("plinth_live_log_loss", "log_loss", "Log loss per labelled prediction of a classifier with probabilities."),
    ("plinth_live_absolute_error", "abs_error", "Absolute error per labelled regression prediction."),
    ("plinth_live_squared_error", "squared_error", "Squared error per labelled regression prediction."),
)
SCORES = tuple(score for _, score, _ in SUMMARIES)
QUALITY = (("accuracy", "correct"), ("log_loss", "log_loss"), ("mae", "abs_error"))


@dataclass
class Totals:
    """Running sums and counts of one version's scores."""

    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SCORES, 0.0))
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SCORES, 0))
    task: ServedTask | None = None

    def exports(self, score: str) -> bool:
        """Whether this version has the series of `score`: its task scores it, or a label already did."""
        if self.counts[score] or self.task is None:
            return self.counts[score] > 0
        if self.task.kind == "regression":
            return score in ("abs_error", "squared_error")
        return score == "correct" or (score == "log_loss" and self.task.probabilities)

    def add(self, label: Labelled) -> None:
        """Add one label's scores."""
        for name in self.sums:
            value = getattr(label.scores, name)
            if value is not None:
                self.sums[name] += float(value)
                self.counts[name] += 1


class LiveQuality(Collector):
    """Reads the store's labels into running totals and windowed quality; a Prometheus collector of both."""

    def __init__(self, store: PredictionStore, windows: Mapping[str, float]) -> None:
        self.store = store
        self.windows = dict(windows)
        self.totals: dict[tuple[str, str], Totals] = {}
        self.seen: set[int] = set()
        self.high = 0
        self.windowed: list[tuple[str, str, Window]] = []
        self.errors = 0
        self.refreshed_at = math.nan
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Read new labels and the windows from the store; False (counted, values kept) when it cannot."""
        try:
            versions = self.store.versions()
            labels = self._new_labels()
            windowed = [
                (by, name, window)
                for by in BY_COLUMNS
                for name, seconds in self.windows.items()
                for window in self.store.windows(self.store.now_ms() - int(seconds * 1000), by)
            ]
        except StoreError as error:
            self.errors += 1
            logger.warning("live quality: %s (values kept from the last refresh)", error)
            return False
        with self._lock:
            for key, task in versions.items():
                self.totals.setdefault(key, Totals()).task = task
            for label in labels:
                self.totals.setdefault((label.model_name, label.model_version), Totals()).add(label)
            self.windowed = windowed
            self.refreshed_at = time.time()
        return True

    def _new_labels(self) -> list[Labelled]:
        """Return the labels not counted yet (read from RESCAN ids below the highest one seen)."""
        fresh: list[Labelled] = []
        low = max(0, self.high - RESCAN)
        while True:
            batch = self.store.labels_after(low, READ_BATCH)
            fresh.extend(label for label in batch if label.id not in self.seen)
            if len(batch) < READ_BATCH:
                break
            low = batch[-1].id
        for label in fresh:
            self.seen.add(label.id)
            self.high = max(self.high, label.id)
        self.seen = {seen for seen in self.seen if seen > self.high - RESCAN}
        return fresh

    def collect(self) -> Iterator[Metric]:
        """Yield the summaries, the windowed quality and the refresh health."""
        with self._lock:
            for name, score, text in SUMMARIES:
                family = SummaryMetricFamily(name, text, labels=LABELS)
                for (model, version), totals in sorted(self.totals.items()):
                    if totals.exports(score):
                        family.add_metric([model, version], totals.counts[score], totals.sums[score])
                yield family
            quality = GaugeMetricFamily(
                "plinth_live_quality",
                "Accuracy, log loss or MAE of the labels whose label or prediction time is within the window.",
                labels=[*LABELS, "metric", "by", "window"],
            )
            rows = GaugeMetricFamily(
                "plinth_live_labelled_rows",
                "Labels whose label or prediction time is within the window.",
                labels=[*LABELS, "by", "window"],
            )
            for by, name, window in self.windowed:
                ident = [window.model_name, window.model_version]
                rows.add_metric([*ident, by, name], window.rows)
                for metric, score in QUALITY:
                    total, count = getattr(window, score)
                    if count:
                        quality.add_metric([*ident, metric, by, name], total / count)
            yield quality
            yield rows
            yield CounterMetricFamily(
                "plinth_live_quality_refresh_errors", "Refreshes that could not read the store.", value=self.errors
            )
            yield GaugeMetricFamily(
                "plinth_live_quality_last_refresh_timestamp_seconds",
                "Unix time of the last refresh that read the store.",
                value=self.refreshed_at,
            )


def parse_windows(text: str) -> dict[str, float]:
    """Return `1h,1d,7d` as {"1h": 3600.0, ...}."""
    windows = {}
    for name in filter(None, (part.strip() for part in text.split(","))):
        windows[name] = parse_duration(name).total_seconds()
    if not windows:
        raise ValueError("--windows: give at least one, e.g. 1h,1d,7d")
    return windows


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the live-quality metrics of PLINTH_PREDICTION_STORE until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m serving.model_service.live_quality", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve /metrics on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S, help="seconds between store reads")
    parser.add_argument(
        "--windows", default=DEFAULT_WINDOWS, help=f"windows, comma-separated (default {DEFAULT_WINDOWS})"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        windows = parse_windows(args.windows)
    except ValueError as error:
        parser.error(str(error))
    store = PredictionStore(prediction_store(), feedback_max_age_s())
    collector, shadow = LiveQuality(store, windows), ShadowPairs(store)
    registry = CollectorRegistry()
    registry.register(collector)
    registry.register(shadow)  # the shadow phase's stored answers, paired by request id (`shadow_pairs.py`)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    collector.refresh()
    shadow.refresh()
    server, _ = start_http_server(args.port, addr=args.host, registry=registry)
    logger.info(
        "live quality of %s on http://%s:%d/metrics every %gs", shown(store.url), args.host, args.port, args.interval
    )
    while not stop.wait(args.interval):
        collector.refresh()
        shadow.refresh()
    server.shutdown()
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
