"""Synthetic traffic: rows sent to the router at a steady rate, every answer recorded.

The demo and the benchmark judge a rollout by what clients saw, so each request keeps its send time,
status and the track that answered it (the router's `x-plinth-track` header).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from serving.rollout.edges.router import TRACK_HEADER

CLIENT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Answer:
    """One request as the client saw it."""

    sent: float
    status: int
    track: str
    seconds: float
    # The client-side failure when there was no answer (status 0): "timeout" or the transport error's name.
    error: str = ""


@dataclass
class TrafficLog:
    """Answers in send order (appends are atomic under the GIL)."""

    answers: list[Answer] = field(default_factory=list)

    def between(self, start: float, end: float) -> list[Answer]:
        """Return the answers sent in [start, end]."""
        return [a for a in self.answers if start <= a.sent <= end]


def failed(answer: Answer) -> bool:
    """A request failed when the client got no answer or a 5xx."""
    return answer.status == 0 or answer.status >= 500


class TrafficGenerator:
    """Sends `rate` requests per second from a small thread pool until stopped."""

    def __init__(
        self,
        url: str,
        instances: Sequence[dict[str, Any]],
        rate: float = 40.0,
        batch: int = 1,
        workers: int = 8,
    ) -> None:
        self.url = url.rstrip("/") + "/predict"
        self.use(instances, batch)
        self.rate = rate
        self.log = TrafficLog()
        self.stopped = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="traffic")
        self.client = httpx.Client(timeout=CLIENT_TIMEOUT_S, limits=httpx.Limits(max_connections=workers))
        self.thread = threading.Thread(target=self.pace, name="traffic-pacer", daemon=True)

    def use(self, instances: Sequence[dict[str, Any]], batch: int = 1) -> None:
        """Send these rows from now on, `batch` per request (the CT demo switches them when the world drifts)."""
        batches = [list(instances[i : i + batch]) for i in range(0, len(instances), batch)]
        self.instances = itertools.cycle(batches)

    def send(self, payload: list[dict[str, Any]]) -> None:
        """Send one request and record its answer."""
        sent = time.time()
        try:
            response = self.client.post(self.url, json={"instances": payload})
            track = response.headers.get(TRACK_HEADER, "?")
            answer = Answer(sent, response.status_code, track, time.time() - sent)
        except httpx.TimeoutException:
            answer = Answer(sent, 0, "?", time.time() - sent, "timeout")
        except httpx.HTTPError as error:
            answer = Answer(sent, 0, "?", time.time() - sent, type(error).__name__)
        self.log.answers.append(answer)

    def pace(self) -> None:
        """Submit requests on a fixed schedule (open loop: a slow backend does not slow the senders)."""
        period, next_at = 1.0 / self.rate, time.monotonic()
        while not self.stopped.is_set():
            self.pool.submit(self.send, next(self.instances))
            next_at += period
            self.stopped.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> TrafficGenerator:
        """Start sending."""
        self.thread.start()
        return self

    def stop(self) -> TrafficLog:
        """Stop sending, wait for requests in flight, and return the log."""
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join()
        self.pool.shutdown(wait=True)
        self.client.close()
        return self.log
