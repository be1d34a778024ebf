"""The router's mirror: marked copies of live requests sent to the canary from one event-loop thread.

A copy must never cost the user anything. The first design sent each copy from a pool of 32 threads; with a
canary that holds every copy for 800 ms, all 32 threads wake, parse and count within milliseconds of each
other and contend for the GIL with the threads answering users (measured: 5 of 638 user requests slowed
beyond 2 x the stable's p99 in `make bench-rollout`). Here every copy is a task on one asyncio loop in one
thread, so at most one mirror thread is ever runnable, however many copies are in flight; the bound on copies
in flight stays, and a copy beyond it is dropped, never queued.

Each copy of a `/predict` request gets a ticket (`core/paired.py`): the canary's answer is handed to the
pairing here, the stable's by the router once the user has it, and the two are compared row by row (label
churn). The counts are Prometheus counters of the process (`plinth_shadow_*`) and, through `PairedSource`, part
of every observation the local rollout judges.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
from prometheus_client import Counter

from serving.rollout.core.observe import PREDICT_ENDPOINT, MetricsSource, Observation
from serving.rollout.core.paired import PairCounts, Pairing

# A copy that gets no answer from the canary (refused, timed out) is counted under this status.
NO_ANSWER = 502
FEEDBACK_ENDPOINT = "/feedback"

SHADOW_PAIRS = Counter(
    "plinth_shadow_pairs",
    "Rows of mirrored /predict requests answered by both the stable and the canary, by slice (feature, value; "
    "both empty: every row).",
    ["feature", "value"],
)
SHADOW_CHURNED = Counter(
    "plinth_shadow_churned",
    "Paired rows whose two answers differ (another label; a value more than 5 % apart), by slice.",
    ["feature", "value"],
)
SHADOW_UNPAIRED = Counter(
    "plinth_shadow_unpaired",
    "Mirrored requests never paired, by reason: stable_failed, canary_failed, mismatched, expired.",
    ["reason"],
)
SHADOW_LABELLED = Counter(
    "plinth_shadow_labelled",
    "Paired classifier rows labelled later through /feedback, by who was right: both_right, stable_only, "
    "canary_only, both_wrong (McNemar's cells).",
    ["cell"],
)


def export(event: PairCounts) -> None:
    """Add one pairing event to the process's Prometheus counters."""
    if event.pairs:
        SHADOW_PAIRS.labels("", "").inc(event.pairs)
        SHADOW_CHURNED.labels("", "").inc(event.churned)
    for (feature, value), (pairs, churned) in event.slices.items():
        SHADOW_PAIRS.labels(feature, value).inc(pairs)
        SHADOW_CHURNED.labels(feature, value).inc(churned)
    for reason, count in event.unpaired.items():
        SHADOW_UNPAIRED.labels(reason).inc(count)
    for cell, count in event.labelled.items():
        SHADOW_LABELLED.labels(cell).inc(count)


class Mirror:
    """Sends copies without blocking the caller; `on_status` gets each copy's status (NO_ANSWER: none)."""

    def __init__(
        self, slots: int, timeout_s: float, on_status: Callable[[int], None], keepalive_expiry_s: float
    ) -> None:
        self.slots, self.timeout_s, self.on_status = slots, timeout_s, on_status
        self.keepalive_expiry_s = keepalive_expiry_s
        self.in_flight = 0
        self.pairing = Pairing(export)
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.client: httpx.AsyncClient | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="mirror", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.client = httpx.AsyncClient(
            timeout=self.timeout_s,
            limits=httpx.Limits(
                max_connections=self.slots, max_keepalive_connections=8, keepalive_expiry=self.keepalive_expiry_s
            ),
        )
        self.loop.call_soon(self.ready.set)
        self.loop.run_forever()

    def start(self) -> Mirror:
        """Start the loop's thread and wait until it takes copies."""
        self.thread.start()
        self.ready.wait()
        return self

    def send(self, method: str, url: str, headers: dict[str, str], body: bytes) -> bool:
        """Schedule one copy; False (dropped) when `slots` copies are already in flight."""
        return self.copy(method, url, headers, body) is not None

    def copy(self, method: str, url: str, headers: dict[str, str], body: bytes) -> int | None:
        """Schedule one copy and return its pairing ticket (0: not a /predict copy); None when dropped."""
        with self.lock:
            if self.in_flight >= self.slots:
                return None
            self.in_flight += 1
        ticket = self.pairing.open(body) if urlsplit(url).path == PREDICT_ENDPOINT else 0
        self.loop.call_soon_threadsafe(self._schedule, method, url, headers, body, ticket)
        return ticket

    def answered(
        self, ticket: int | None, path: str, body: bytes, status: int, response: httpx.Response | None
    ) -> None:
        """Take the stable's answer to a request: its half of `ticket`'s pair, or a label it accepted.

        The comparison runs on the mirror's thread, never on the user's: the call only schedules it.
        """
        if ticket:
            content = response.content if response is not None else b""
            self.loop.call_soon_threadsafe(self.pairing.stable, ticket, status, content)
        elif path == FEEDBACK_ENDPOINT and status == 200:
            self.loop.call_soon_threadsafe(self.pairing.feedback, body)

    def _schedule(self, method: str, url: str, headers: dict[str, str], body: bytes, ticket: int) -> None:
        self.loop.create_task(self._copy(method, url, headers, body, ticket))

    async def _copy(self, method: str, url: str, headers: dict[str, str], body: bytes, ticket: int) -> None:
        assert self.client is not None
        content = b""
        try:
            response = await self.client.request(method, url, headers=headers, content=body)
            status, content = response.status_code, response.content
        except httpx.HTTPError:
            status = NO_ANSWER
        finally:
            with self.lock:
                self.in_flight -= 1
        if ticket:
            self.pairing.canary(ticket, status, content)
        self.on_status(status)

    async def _shutdown(self) -> None:
        copies = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in copies:
            task.cancel()
        await asyncio.gather(*copies, return_exceptions=True)
        if self.client is not None:
            await self.client.aclose()

    def stop(self) -> None:
        """Cancel the copies still in flight (uncounted), close the connections and stop the loop."""
        if not self.thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(timeout=self.timeout_s)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=self.timeout_s)
        self.loop.close()


class PairedSource:
    """A metrics source that adds the mirror's paired counts since `start` to every observation it reads.

    The pairing lives beside the router, in the rollout's own process, so it is read exactly, not scraped.
    `mirror` returns the router's mirror (None before the router runs: no pairs, not "no data").
    """

    def __init__(self, source: MetricsSource, mirror: Callable[[], Mirror | None]) -> None:
        self.source, self.mirror = source, mirror
        self.before = PairCounts()

    def counts(self) -> PairCounts:
        """Return the pairing's counts so far (none without a router)."""
        mirror = self.mirror()
        return mirror.pairing.snapshot() if mirror is not None else PairCounts()

    def start(self) -> None:
        """Start the rollout's count here, and the wrapped source's baseline."""
        self.before = self.counts()
        self.source.start()

    def observe(self, window_seconds: float) -> Observation:
        """Return the wrapped source's observation with the rollout's pairs so far."""
        observation = self.source.observe(window_seconds)
        return dataclasses.replace(observation, pairs=self.counts().since(self.before))
