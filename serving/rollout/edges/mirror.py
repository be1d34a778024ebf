"""The router's mirror: marked copies of live requests sent to the canary from one event-loop thread.

A copy must never cost the user anything. The first design sent each copy from a pool of 32 threads; with a
canary that holds every copy for 800 ms, all 32 threads wake, parse and count within milliseconds of each
other and contend for the GIL with the threads answering users (measured: 5 of 638 user requests slowed
beyond 2 x the stable's p99 in `make bench-rollout`). Here every copy is a task on one asyncio loop in one
thread, so at most one mirror thread is ever runnable, however many copies are in flight; the bound on copies
in flight stays, and a copy beyond it is dropped, never queued.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import httpx

# A copy that gets no answer from the canary (refused, timed out) is counted under this status.
NO_ANSWER = 502


class Mirror:
    """Sends copies without blocking the caller; `on_status` gets each copy's status (NO_ANSWER: none)."""

    def __init__(
        self, slots: int, timeout_s: float, on_status: Callable[[int], None], keepalive_expiry_s: float
    ) -> None:
        self.slots, self.timeout_s, self.on_status = slots, timeout_s, on_status
        self.keepalive_expiry_s = keepalive_expiry_s
        self.in_flight = 0
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
        with self.lock:
            if self.in_flight >= self.slots:
                return False
            self.in_flight += 1
        self.loop.call_soon_threadsafe(self._schedule, method, url, headers, body)
        return True

    def _schedule(self, method: str, url: str, headers: dict[str, str], body: bytes) -> None:
        self.loop.create_task(self._copy(method, url, headers, body))

    async def _copy(self, method: str, url: str, headers: dict[str, str], body: bytes) -> None:
        assert self.client is not None
        try:
            status = (await self.client.request(method, url, headers=headers, content=body)).status_code
        except httpx.HTTPError:
            status = NO_ANSWER
        finally:
            with self.lock:
                self.in_flight -= 1
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
