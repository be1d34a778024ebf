"""The batcher sends a lone request at once, whatever wait it learned under load (BentoML's own does not)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from bentoml._internal.marshal import dispatcher

from serving.model_service import batching

# BentoML's own optimizer, whatever ran before: importing the service calls `batching.install()`, which replaces
# `dispatcher.Optimizer` for the whole process (another test module may have done it in this worker first).
STOCK = batching.EagerOptimizer.__bases__[0]

# What BentoML's optimizer learns from a burst: batches of 16 rows that each waited 30 ms for the one before.
BURST_WAIT_S = 0.03


def learn_a_burst(optimizer: dispatcher.Optimizer) -> None:
    """Log a burst's batches (past the optimizer's skipped first samples), then refresh as the dispatcher does."""
    for _ in range(optimizer.N_SKIPPED_SAMPLE + optimizer.N_KEPT_SAMPLE):
        optimizer.log_outbound(n=16, wait=BURST_WAIT_S, duration=0.002 + 16 * 0.0005)
    optimizer.trigger_refresh()


def test_the_eager_optimizer_forgets_the_wait_and_keeps_the_cost_model() -> None:
    assert STOCK.__module__ == dispatcher.__name__  # BentoML's class, not the patch
    stock, eager = STOCK(0.5), batching.EagerOptimizer(0.5)
    learn_a_burst(stock)
    learn_a_burst(eager)
    assert stock.wait == pytest.approx(BURST_WAIT_S)  # what a lone request would wait for afterwards
    assert eager.wait == 0
    assert (eager.o_a, eager.o_b) == (stock.o_a, stock.o_b)  # what sheds a request that cannot make it in time


def test_install_replaces_the_optimizer_of_new_dispatchers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatcher, "Optimizer", dispatcher.Optimizer)  # restored after the test
    batching.install()
    created = dispatcher.CorkDispatcher(500, 256, fallback=lambda: None, get_batch_size=len)
    assert isinstance(created.optimizer, batching.EagerOptimizer)


async def lone_request_ticks(optimizer: dispatcher.Optimizer, monkeypatch: pytest.MonkeyPatch) -> int:
    """Train a dispatcher, teach its optimizer a burst, then count the polling ticks one lone request waits."""
    cork: dispatcher.CorkDispatcher[list[int], list[int]]
    cork = dispatcher.CorkDispatcher(500, 256, fallback=list, get_batch_size=len)
    cork.optimizer = optimizer

    async def score(batches: Sequence[list[int]]) -> list[list[int]]:
        return [[value * 2 for value in batch] for batch in batches]

    call = cork(score)
    for value in range(12):  # the controller's training requests, one at a time
        assert await call([value]) == [value * 2]
    learn_a_burst(optimizer)
    ticks = 0
    sleep = asyncio.sleep

    async def counted(delay: float) -> None:
        nonlocal ticks
        ticks += delay == cork.TICKET_INTERVAL
        await sleep(0)

    monkeypatch.setattr(dispatcher.asyncio, "sleep", counted)
    assert await call([21]) == [42]
    cork.shutdown()
    return ticks


def test_a_lone_request_after_a_burst_is_sent_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    assert asyncio.run(lone_request_ticks(batching.EagerOptimizer(0.5), monkeypatch)) == 0


def test_bentoml_alone_holds_a_lone_request_after_a_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    """The upstream behaviour `batching` exists for: should BentoML fix it, this fails and the patch can go."""
    assert asyncio.run(lone_request_ticks(STOCK(0.5), monkeypatch)) > 0
