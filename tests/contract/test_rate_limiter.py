"""The RateLimiter contract, against the in-process buckets and Redis (a real server)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.runtime.config import Rate

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def key() -> str:
    return f"contract:{uuid.uuid4().hex}"


async def test_burst_then_refusal_with_a_retry_hint(process_backends, key):
    rl = process_backends.limiter
    rate = Rate(per_second=0.5, burst=3)
    assert [(await rl.hit(key, rate)).allowed for _ in range(4)] == [True, True, True, False]
    d = await rl.hit(key, rate)
    assert not d.allowed and 1.5 < d.retry_after_s <= 2.0


async def test_the_bucket_refills_over_time(process_backends, key):
    rl = process_backends.limiter
    rate = Rate(per_second=20, burst=1)
    assert (await rl.hit(key, rate)).allowed
    refused = await rl.hit(key, rate)
    assert not refused.allowed and 0 < refused.retry_after_s <= 0.05
    await asyncio.sleep(0.08)
    assert (await rl.hit(key, rate)).allowed


async def test_buckets_are_per_key(process_backends, key):
    rl = process_backends.limiter
    rate = Rate(per_second=0.01, burst=1)
    assert (await rl.hit(key, rate)).allowed
    assert not (await rl.hit(key, rate)).allowed
    assert (await rl.hit(key + ":other", rate)).allowed


async def test_cost_counts_and_a_cost_above_burst_never_passes(process_backends, key):
    rl = process_backends.limiter
    rate = Rate(per_second=0.01, burst=5)
    assert (await rl.hit(key, rate, cost=4)).allowed
    assert not (await rl.hit(key, rate, cost=2)).allowed
    assert (await rl.hit(key, rate, cost=1)).allowed
    assert not (await rl.hit(key + ":big", rate, cost=6)).allowed


async def test_concurrent_hits_never_overspend(process_backends, key):
    rl = process_backends.limiter
    rate = Rate(per_second=0.01, burst=10)
    decisions = await asyncio.gather(*(rl.hit(key, rate) for _ in range(60)))
    assert sum(d.allowed for d in decisions) == 10


async def test_redis_buckets_are_shared_by_replicas_and_expire(backend_settings, key):
    import redis.asyncio as aioredis

    from services.runtime.backends import build_backends

    settings = backend_settings(cache="redis")
    a, b = await build_backends(settings), await build_backends(settings)
    try:
        rate = Rate(per_second=2, burst=4)
        hits = [await (a if i % 2 else b).limiter.hit(key, rate) for i in range(6)]
        assert sum(d.allowed for d in hits) == 4
        raw = aioredis.Redis.from_url(settings.backends.redis_url)
        ttl_ms = await raw.pttl(f"{settings.backends.key_prefix}rl:{key}")
        await raw.aclose()
        # Expires when full again: <= 4 tokens / 2 per s + 1 s slack.
        assert 0 < ttl_ms <= 3000
    finally:
        await a.close()
        await b.close()
