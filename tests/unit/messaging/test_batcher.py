"""The PostgreSQL store's coalescing of concurrent writes (services/messaging/postgres.py
_Batcher), with a recording `run` in place of a transaction."""

from __future__ import annotations

import asyncio

import pytest

from services.messaging.postgres import _Batcher
from services.runtime.errors import Unavailable

pytestmark = pytest.mark.timeout(10)


class Recorder:
    def __init__(self, fail_on=(), delay: float = 0.01, error: Exception | None = None):
        self.batches: list[list] = []
        self.fail_on = set(fail_on)
        self.delay = delay
        self.error = error

    async def __call__(self, items: list) -> list:
        self.batches.append(list(items))
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        if self.fail_on & set(items):
            raise ValueError(f"bad item in {items}")
        return [i * 10 for i in items]


async def test_concurrent_calls_share_batches_and_get_their_own_results():
    run = Recorder()
    b = _Batcher(run, inflight=1)
    assert await asyncio.gather(*[b.submit(i) for i in range(50)]) == [i * 10 for i in range(50)]
    assert len(run.batches) < 5  # the first alone, the rest coalesced while it ran
    assert sorted(i for batch in run.batches for i in batch) == list(range(50))


async def test_a_bad_item_fails_alone():
    run = Recorder(fail_on={3})
    b = _Batcher(run, inflight=1)
    out = await asyncio.gather(*[b.submit(i) for i in range(8)], return_exceptions=True)
    assert [type(o) for o in out] == [int] * 3 + [ValueError] + [int] * 4
    assert [3] in run.batches  # run again alone


async def test_an_unavailable_database_fails_the_batch_without_reruns():
    run = Recorder(error=Unavailable("down", reason="DATABASE_UNAVAILABLE"))
    b = _Batcher(run, inflight=1)
    out = await asyncio.gather(*[b.submit(i) for i in range(6)], return_exceptions=True)
    assert all(isinstance(o, Unavailable) for o in out)
    assert all(len(batch) > 1 for batch in run.batches[1:])  # nothing rerun item by item


async def test_no_call_is_stranded_between_a_worker_finishing_and_the_next_call():
    run = Recorder(delay=0)
    b = _Batcher(run, inflight=1)
    async with asyncio.timeout(2):  # a stranded call would wait for ever
        for i in range(200):
            assert await b.submit(i) == i * 10
            if i % 3 == 0:
                await asyncio.sleep(0)


async def test_batches_stop_at_the_weight_limit_and_inflight_bounds_concurrency():
    running = 0
    peak = 0
    sizes = []

    async def run(items):
        nonlocal running, peak
        sizes.append(len(items))
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return items

    b = _Batcher(run, inflight=2, weight=lambda i: 4, max_weight=10)
    assert await asyncio.gather(*[b.submit(i) for i in range(20)]) == list(range(20))
    assert peak == 2 and max(sizes) == 2


async def test_a_call_cancelled_before_its_batch_starts_is_not_run():
    run = Recorder(delay=0.05)
    b = _Batcher(run, inflight=1)
    first = asyncio.create_task(b.submit(1))
    await asyncio.sleep(0.01)  # the first batch is running
    gone = asyncio.create_task(b.submit(2))
    kept = asyncio.create_task(b.submit(3))
    await asyncio.sleep(0)
    gone.cancel()
    assert await first == 10 and await kept == 30
    assert [i for batch in run.batches for i in batch] == [1, 3]
    await b.drain()
