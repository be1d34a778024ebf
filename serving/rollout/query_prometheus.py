"""Metrics source that asks a Prometheus server (local process or in-cluster) with PromQL.

The scrape configuration adds `track="stable"|"canary"` to every series of a target, so the same queries
work for the local router and the cluster, and no query depends on pod names.
"""

from __future__ import annotations

import math

import httpx

from serving.rollout.observe import (
    NAN,
    PREDICT_ENDPOINT,
    Observation,
    TrackSample,
    empty_observation,
)

QUERY_TIMEOUT_S = 5.0


def track_queries(track: str, window: str) -> dict[str, str]:
    """Return the PromQL of every signal for one track over a `window` like "30s"."""
    selector = f'track="{track}",endpoint="{PREDICT_ENDPOINT}"'
    requests = f"bentoml_service_request_total{{{selector}}}"
    errors = f'bentoml_service_request_total{{{selector},http_response_code=~"5.."}}'
    duration = f"bentoml_service_request_duration_seconds_bucket{{{selector}}}"
    probability = f'plinth_prediction_probability_bucket{{track="{track}"}}'
    return {
        "up": f'min(up{{track="{track}"}})',
        "requests": f"sum(increase({requests}[{window}]))",
        # A service that never answered 5xx has no such series: zero, not "no data".
        "errors": f"sum(increase({errors}[{window}])) or vector(0)",
        "p99": f"histogram_quantile(0.99, sum by (le) (rate({duration}[{window}])))",
        "buckets": f"sum by (le) (increase({probability}[{window}]))",
        "drift": f'max(plinth_input_drift_psi{{track="{track}"}})',
        "info": f'plinth_model_info{{track="{track}"}}',
    }


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

    def sample(self, track: str, window_seconds: float) -> TrackSample:
        """Read one track; a target that is down yields an empty sample."""
        queries = track_queries(track, f"{max(1, round(window_seconds))}s")
        if self.scalar(queries["up"]) != 1.0:
            return TrackSample()
        buckets = {float(s["metric"]["le"]): float(s["value"][1]) for s in self.query(queries["buckets"])}
        info = self.query(queries["info"])
        return TrackSample(
            requests=self.scalar(queries["requests"]),
            errors=self.scalar(queries["errors"]),
            p99_seconds=self.scalar(queries["p99"]),
            probability_buckets={b: v for b, v in buckets.items() if not math.isnan(v)},
            input_drift=self.scalar(queries["drift"]),
            model_version=info[0]["metric"].get("model_version") if info else None,
        )

    def observe(self, window_seconds: float) -> Observation:
        """Read both tracks; an unreachable or failing Prometheus means no data, never a pass."""
        try:
            return Observation(stable=self.sample("stable", window_seconds),
                               canary=self.sample("canary", window_seconds))
        except (httpx.HTTPError, RuntimeError, KeyError, ValueError) as error:
            return empty_observation(f"prometheus at {self.url}: {type(error).__name__}: {error}")
