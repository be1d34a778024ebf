"""Fallback metrics source: read each service's /metrics directly, for machines without Prometheus.

It computes the same signals as the PromQL queries from counter deltas between two scrapes, parsing the
text format with prometheus-client's own parser. A counter that went down means the process restarted,
so the current value is the delta (as Prometheus' `increase` treats a reset).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

from serving.rollout.core.histogram import histogram_quantile
from serving.rollout.core.observe import (
    NAN,
    PREDICT_ENDPOINT,
    Observation,
    TrackSample,
    info_labels,
    live_quality_of,
    predictions_of,
)

Series = tuple[str, frozenset[tuple[str, str]]]
Snapshot = dict[Series, float]
SCRAPE_TIMEOUT_S = 3.0
# The key of the live-quality exporter's page among the URLs (beside the tracks "stable" and "canary").
LIVE = "live-quality"


def parse_snapshot(text: str) -> Snapshot:
    """Return every sample of a /metrics page keyed by (sample name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def delta(now: Snapshot, before: Snapshot) -> Snapshot:
    """Return counter increases since `before`, treating a decrease as a restart."""
    return {key: value - before.get(key, 0.0) if value >= before.get(key, 0.0) else value for key, value in now.items()}


def select(snapshot: Snapshot, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """Return (labels, value) of the samples called `name` whose labels match exactly or by "5xx"."""
    out = []
    for (sample_name, sample_labels), value in snapshot.items():
        if sample_name != name:
            continue
        found = dict(sample_labels)
        if all(found.get(k, "").startswith(v.rstrip("x")) for k, v in labels.items()):
            out.append((found, value))
    return out


def summarise(current: Snapshot, increase: Snapshot) -> TrackSample:
    """Compute one track's signals from the current page and the increase over the interval."""
    predict = {"endpoint": PREDICT_ENDPOINT}
    requests = select(increase, "bentoml_service_request_total", **predict)
    errors = select(increase, "bentoml_service_request_total", **predict, http_response_code="5xx")
    latency: dict[float, float] = {}
    for labels, value in select(increase, "bentoml_service_request_duration_seconds_bucket", **predict):
        latency[float(labels["le"])] = latency.get(float(labels["le"]), 0.0) + value
    drift = [value for _, value in select(current, "plinth_input_drift_psi") if not math.isnan(value)]
    info = info_labels([labels for labels, _ in select(current, "plinth_model_info")])
    return TrackSample(
        requests=sum(v for _, v in requests) if requests else NAN,
        errors=sum(v for _, v in errors),
        p99_seconds=histogram_quantile(0.99, latency),
        latency=latency,
        predictions=predictions_of((name, dict(labels), value) for (name, labels), value in increase.items()),
        input_drift=max(drift) if drift else NAN,
        model_version=info["model_version"],
        task=info["task"],
        drift=info["drift"],
    )


def with_live_quality(
    stable: tuple[TrackSample, Snapshot], canary: tuple[TrackSample, Snapshot], exporter: Snapshot | None = None
) -> Observation:
    """Return both tracks with live quality selected by each one's model version over every page's increases.

    The live-quality exporter's page (`exporter`) carries every version's labels from the shared store; a
    version's labelled rows are those of every page read, whichever process exported them.
    """
    pages = (stable[1], canary[1], exporter or {})
    live = [(name, dict(labels), value) for increase in pages for (name, labels), value in increase.items()]
    return Observation(
        stable=dataclasses.replace(stable[0], live=live_quality_of(live, stable[0].model_version)),
        canary=dataclasses.replace(canary[0], live=live_quality_of(live, canary[0].model_version)),
    )


class ScrapeSource:
    """Reads the stable's, the canary's and the live-quality exporter's (LIVE) /metrics, diffed between calls."""

    def __init__(self, urls: Mapping[str, str], timeout: float = SCRAPE_TIMEOUT_S) -> None:
        self.urls = dict(urls)
        self.client = httpx.Client(timeout=timeout)
        self.previous: dict[str, Snapshot] = {}

    def scrape(self, track: str) -> Snapshot | None:
        """Return the track's current page, or None when the service does not answer."""
        try:
            response = self.client.get(f"{self.urls[track].rstrip('/')}/metrics")
            response.raise_for_status()
        except httpx.HTTPError:
            return None
        return parse_snapshot(response.text)

    def start(self) -> None:
        """Take the baseline that the first interval's deltas are computed against."""
        self.previous = {track: snap for track in self.urls if (snap := self.scrape(track)) is not None}

    def sample(self, track: str) -> tuple[TrackSample, Snapshot]:
        """Read one track and its increase; a service that does not answer yields an empty sample."""
        current = self.scrape(track)
        if current is None:
            return TrackSample(missing=f"{track} /metrics at {self.urls[track]} not answering"), {}
        increase = delta(current, self.previous.get(track, {}))
        self.previous[track] = current
        return summarise(current, increase), increase

    def observe(self, window_seconds: float) -> Observation:
        """Return both tracks' signals since the previous call (the controller calls once per interval)."""
        exporter = self.sample(LIVE)[1] if LIVE in self.urls else None
        return with_live_quality(self.sample("stable"), self.sample("canary"), exporter)

    def set_url(self, track: str, url: str) -> None:
        """Point a track at another process (after promotion the stable moves); its deltas restart."""
        self.urls[track] = url
        self.previous.pop(track, None)
