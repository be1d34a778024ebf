"""The router's shadow mirroring, against real HTTP services on 127.0.0.1.

The user's answer comes from the stable only; the canary gets a marked copy; a slow or failing canary
neither delays nor fails the user.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from serving.embedded.processes import free_port
from serving.model_service.settings import MIRROR_HEADER
from serving.rollout.core.observe import CANARY, STABLE
from serving.rollout.edges.mirror import Mirror
from serving.rollout.edges.router import TRACK_HEADER, WeightedRouter
from serving.rollout.tests.http_backend import Backend, wait_until


@pytest.fixture
def stable() -> Iterator[Backend]:
    backend = Backend(STABLE)
    yield backend
    backend.close()


def mirroring(stable: Backend, canary_url: str) -> WeightedRouter:
    router = WeightedRouter(stable.url, canary_url, retry_on_stable=False).start()
    router.set_mirror(True)
    return router


def post(router: WeightedRouter, client: httpx.Client) -> httpx.Response:
    return client.post(f"{router.url}/predict", json={"instances": [{"x": 1}]})


def test_the_stable_answers_and_the_canary_gets_a_marked_copy(stable: Backend) -> None:
    canary = Backend(CANARY)
    router = mirroring(stable, canary.url)
    try:
        with httpx.Client() as client:
            answers = [post(router, client) for _ in range(5)]
        assert [a.json() for a in answers] == [[{"answered_by": STABLE}]] * 5
        assert {a.headers[TRACK_HEADER] for a in answers} == {STABLE}
        assert wait_until(lambda: len(canary.seen) == 5)
        assert all(seen.get(MIRROR_HEADER) == "1" for seen in canary.seen)
        assert all(MIRROR_HEADER not in seen for seen in stable.seen)
        assert router.stats.answers[CANARY] == {}
        assert wait_until(lambda: router.stats.mirrored == {200: 5})
    finally:
        router.stop()
        canary.close()


def test_a_client_cannot_mark_its_own_request_as_a_mirror(stable: Backend) -> None:
    router = mirroring(stable, Backend(CANARY).url)
    try:
        with httpx.Client() as client:
            client.post(f"{router.url}/predict", json={}, headers={MIRROR_HEADER: "1"})
        assert MIRROR_HEADER not in stable.seen[0]
    finally:
        router.stop()


def test_a_slow_canary_does_not_slow_the_user(stable: Backend) -> None:
    held = threading.Event()
    canary = Backend(CANARY, gate=held)
    router = mirroring(stable, canary.url)
    try:
        with httpx.Client() as client:
            answers = [post(router, client) for _ in range(5)]
        # Every user got the stable's answer while the canary still holds all five copies unanswered.
        assert [a.status_code for a in answers] == [200] * 5
        assert wait_until(lambda: len(canary.seen) == 5)
        assert router.stats.mirrored == {}
        held.set()
        assert wait_until(lambda: router.stats.mirrored == {200: 5})
    finally:
        held.set()
        router.stop()
        canary.close()


@pytest.mark.parametrize("broken", ["500", "refused"])
def test_a_failing_mirror_is_not_a_user_failure(stable: Backend, broken: str) -> None:
    canary = Backend(CANARY, status=500) if broken == "500" else None
    router = mirroring(stable, canary.url if canary else f"http://127.0.0.1:{free_port()}")
    try:
        with httpx.Client() as client:
            answers = [post(router, client) for _ in range(5)]
        assert [a.status_code for a in answers] == [200] * 5
        assert wait_until(lambda: router.stats.mirrored.get(500 if canary else 502) == 5)
        assert router.stats.retried_on_stable == 0
    finally:
        router.stop()
        if canary:
            canary.close()


def test_mirroring_stops_with_the_canary_and_when_turned_off(stable: Backend) -> None:
    canary = Backend(CANARY)
    router = mirroring(stable, canary.url)
    try:
        router.set_mirror(False)
        with httpx.Client() as client:
            post(router, client)
            router.set_mirror(True)
            router.set_backend(CANARY, None)
            post(router, client)
        assert len(stable.seen) == 2
        assert canary.seen == []
        assert router.mirroring is False
    finally:
        router.stop()
        canary.close()


def test_copies_beyond_the_bound_are_dropped_not_queued_and_stop_abandons_the_rest() -> None:
    held = threading.Event()
    canary = Backend(CANARY, gate=held)
    statuses: list[int] = []
    mirror = Mirror(slots=2, timeout_s=5.0, on_status=statuses.append, keepalive_expiry_s=2.0).start()
    try:
        sent = [mirror.send("POST", f"{canary.url}/predict", {}, b"{}") for _ in range(4)]
        assert sent == [True, True, False, False]
        assert wait_until(lambda: len(canary.seen) == 2)
        held.set()
        assert wait_until(lambda: statuses == [200, 200])
        assert mirror.send("POST", f"{canary.url}/predict", {}, b"{}")  # slots freed by the answers
        held.clear()
        assert wait_until(lambda: len(canary.seen) == 3)
        mirror.stop()  # one copy still held by the canary: cancelled, not counted, and stop returns
        assert statuses == [200, 200]
        assert not mirror.thread.is_alive()
    finally:
        held.set()
        mirror.stop()
        canary.close()


def test_idle_upstream_connections_are_dropped_before_the_model_server_closes_them(stable: Backend) -> None:
    """A pooled connection must expire before uvicorn's keep-alive closes it, or a reuse races the close (502)."""
    server_keep_alive_s = inspect.signature(uvicorn.Config).parameters["timeout_keep_alive"].default
    router = WeightedRouter(stable.url).start()
    try:
        pools = [router.client._transport._pool, router.mirror.client._transport._pool]  # type: ignore[attr-defined,union-attr]
        assert all(pool._keepalive_expiry is not None for pool in pools)
        assert max(pool._keepalive_expiry for pool in pools) < server_keep_alive_s
    finally:
        router.stop()
