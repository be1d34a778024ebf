"""Metrics source that asks a Prometheus server (local process or in-cluster) with PromQL.

The scrape configuration adds `track="stable"|"canary"` to every series of a target, so the same queries
work for the local router and the cluster, and no query depends on pod names.
"""

from __future__ import annotations

import dataclasses
import math
import time

import httpx

from serving.rollout.core.joined import GAUGES, pairs_of
from serving.rollout.core.observe import (
    CLASS_COUNTER,
    CONFIDENCE_COUNTER,
    LIVE_SAMPLES,
    NAN,
    PREDICT_ENDPOINT,
    PROBABILITY_BUCKET,
    VALUE_BUCKET,
    Observation,
    TrackSample,
    empty_observation,
    info_labels,
    live_quality_of,
    predictions_of,
)
from serving.rollout.core.paired import PairCounts

QUERY_TIMEOUT_S = 5.0
# `increase` needs two samples of a series inside the window: keep it at least four scrape intervals long
# (a local Prometheus scrapes every 500 ms; in a cluster the spec's interval is far longer than this).
MIN_WINDOW_S = 2.0
# The stored pairs are the rollout's counts so far, per version pair: the latest value within this long is
# current, so an interval shorter than the exporter's refresh or scrape never reads "no pairs" (not applicable).
PAIRS_LOOKBACK_S = 300.0


def track_queries(track: str, window: str) -> dict[str, str]:
    """Return the PromQL of every signal for one track over a `window` like "30s"."""
    selector = f'track="{track}",endpoint="{PREDICT_ENDPOINT}"'
    requests = f"bentoml_service_request_total{{{selector}}}"
    errors = f'bentoml_service_request_total{{{selector},http_response_code=~"5.."}}'
    duration = f"bentoml_service_request_duration_seconds_bucket{{{selector}}}"
    own = f'{{track="{track}"}}'
    return {
        # Only targets scraped inside the window: a replaced canary's last `up` must not answer for the new one.
        "up": f'min(last_over_time(up{{track="{track}"}}[{window}]))',
        "requests": f"sum(increase({requests}[{window}]))",
        # A service that never answered 5xx has no such series: zero, not "no data".
        "errors": f"sum(increase({errors}[{window}])) or vector(0)",
        "p99": f"histogram_quantile(0.99, sum by (le) (rate({duration}[{window}])))",
        "latency": f"sum by (le) (increase({duration}[{window}]))",
        # Predictions of any task: what the service does not export (a regressor's classes) is no series.
        CLASS_COUNTER: f"sum by (class) (increase({CLASS_COUNTER}{own}[{window}]))",
        PROBABILITY_BUCKET: f"sum by (class, le) (increase({PROBABILITY_BUCKET}{own}[{window}]))",
        VALUE_BUCKET: f"sum by (le) (increase({VALUE_BUCKET}{own}[{window}]))",
        CONFIDENCE_COUNTER: f"sum(increase({CONFIDENCE_COUNTER}{own}[{window}]))",
        # Gauges only as scraped inside the window: a series whose target went away while Prometheus was down
        # has no staleness marker and would answer an instant query for five more minutes.
        "drift": f"max(last_over_time(plinth_input_drift_psi{own}[{window}]))",
        "info": f"last_over_time(plinth_model_info{own}[{window}])",
    }


def live_queries(window: str) -> dict[str, str]:
    """Return the PromQL of the live-quality increases per model version, over every track and process.

    Not by `track`: the version label is the logged prediction's, and feedback for the stable's answer may
    be exported by the canary's process.
    """
    return {name: f"sum by (model_version) (increase({name}[{window}]))" for name in LIVE_SAMPLES}


def window_of(window_seconds: float) -> str:
    """Return a PromQL range no shorter than MIN_WINDOW_S, in milliseconds."""
    return f"{round(max(window_seconds, MIN_WINDOW_S) * 1000)}ms"


class PrometheusSource:
    """Reads both tracks' signals from the Prometheus HTTP API."""

    def __init__(self, url: str, timeout: float = QUERY_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(timeout=timeout)

    def start(self) -> None:
        """Prometheus keeps the history itself: nothing to mark."""

    def query(self, promql: str) -> list[dict]:
        """Run an instant query and return its result vector."""
        response = self.client.get(f"{self.url}/api/v1/query", params={"query": promql})
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus query failed: {body.get('error', body)}")
        result: list[dict] = body["data"]["result"]
        return result

    def scalar(self, promql: str) -> float:
        """Return the single value of an aggregated query, NaN when there is no series."""
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else NAN

    def wait_for_target(self, track: str, address: str, timeout: float = 30.0) -> bool:
        """Poll until `address` is the track's only target and has been scraped twice (`increase` needs two).

        A target that was just replaced (the previous canary) keeps answering queries until its series go
        stale, so counting the track's samples alone would pass too early.
        """
        scraped = f'sum(count_over_time(up{{track="{track}",instance="{address}"}}[30s]))'
        targets = f'count(last_over_time(up{{track="{track}"}}[{MIN_WINDOW_S:g}s]))'
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.scalar(scraped) >= 2 and self.scalar(targets) == 1:
                    return True
            except (httpx.HTTPError, RuntimeError, KeyError, ValueError):
                pass
            time.sleep(0.25)
        return False

    def sample(self, track: str, window_seconds: float) -> TrackSample:
        """Read one track; a target that is down yields an empty sample."""
        queries = track_queries(track, window_of(window_seconds))
        up = self.scalar(queries["up"])
        if up != 1.0:
            return TrackSample(missing=f"{track} target {'not scraped' if math.isnan(up) else 'down'} (up={up:g})")
        info = info_labels([series["metric"] for series in self.query(queries["info"])])
        return TrackSample(
            requests=self.scalar(queries["requests"]),
            errors=self.scalar(queries["errors"]),
            p99_seconds=self.scalar(queries["p99"]),
            latency={float(s["metric"]["le"]): float(s["value"][1]) for s in self.query(queries["latency"])},
            predictions=predictions_of(
                (name, series["metric"], float(series["value"][1]))
                for name in (CLASS_COUNTER, PROBABILITY_BUCKET, VALUE_BUCKET, CONFIDENCE_COUNTER)
                for series in self.query(queries[name])
            ),
            input_drift=self.scalar(queries["drift"]),
            model_version=info["model_version"],
            task=info["task"],
            drift=info["drift"],
        )

    def stored_pairs(self, stable: str | None, canary: str | None, window: str) -> PairCounts | None:
        """Return the shadow phase's pairs the live-quality process joined from the store (`core/joined.py`)."""
        if not stable or not canary or "," in stable or "," in canary:
            return None
        selector = f'model_version="{canary}",stable_version="{stable}"'
        samples = [
            (name, series["metric"], float(series["value"][1]))
            for name in GAUGES
            for series in self.query(f"last_over_time({name}{{{selector}}}[{window}])")
        ]
        # No series yet (the exporter has not joined the phase's first rows, or cannot): no pairs, which holds a
        # listed shadow-churn check (pending) instead of letting the phase pass without it.
        found = pairs_of(samples, stable, canary)
        return found if found is not None else PairCounts()

    def observe(self, window_seconds: float) -> Observation:
        """Read both tracks; an unreachable or failing Prometheus means no data, never a pass."""
        try:
            stable, canary = self.sample("stable", window_seconds), self.sample("canary", window_seconds)
            live = [
                (name, series["metric"], float(series["value"][1]))
                for name, promql in live_queries(window_of(window_seconds)).items()
                for series in self.query(promql)
            ]
            return Observation(
                stable=dataclasses.replace(stable, live=live_quality_of(live, stable.model_version)),
                canary=dataclasses.replace(canary, live=live_quality_of(live, canary.model_version)),
                pairs=self.stored_pairs(
                    stable.model_version, canary.model_version, window_of(max(window_seconds, PAIRS_LOOKBACK_S))
                ),
            )
        except (httpx.HTTPError, RuntimeError, KeyError, ValueError) as error:
            return empty_observation(f"prometheus at {self.url}: {type(error).__name__}: {error}")
