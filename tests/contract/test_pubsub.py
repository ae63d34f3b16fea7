"""The PubSub contract, against the in-process hub and Redis (a real server): fan-out,
channel add/remove, and overflow (a subscriber that falls behind is told, once)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.runtime.pubsub import SubscriptionOverflow

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def ch() -> str:
    return f"contract.{uuid.uuid4().hex[:10]}"


async def next_msg(sub, timeout: float = 3.0):
    return await asyncio.wait_for(sub.get(), timeout)


async def nothing_more(sub, wait: float = 0.15) -> bool:
    try:
        await asyncio.wait_for(sub.get(), wait)
    except TimeoutError:
        return True
    return False


async def test_fan_out_to_every_subscriber(process_backends, ch):
    ps = process_backends.pubsub
    subs = [await ps.subscribe([ch]) for _ in range(3)]
    other = await ps.subscribe([ch + ".other"])
    await ps.publish(ch, b"wake")
    await ps.publish(ch, b"\x00\xffbinary")
    for sub in subs:
        assert await next_msg(sub) == (ch, b"wake")
        assert await next_msg(sub) == (ch, b"\x00\xffbinary")
    assert await nothing_more(other)
    for sub in subs + [other]:
        await sub.close()


async def test_channels_can_be_added_and_removed(process_backends, ch):
    ps = process_backends.pubsub
    sub = await ps.subscribe()
    await sub.add(ch + ".a", ch + ".b")
    await sub.add(ch + ".a")  # already there: no-op
    await ps.publish(ch + ".a", b"1")
    await ps.publish(ch + ".b", b"2")
    assert {await next_msg(sub), await next_msg(sub)} == {(ch + ".a", b"1"), (ch + ".b", b"2")}
    await sub.remove(ch + ".a", ch + ".never")
    await ps.publish(ch + ".a", b"3")
    await ps.publish(ch + ".b", b"4")
    assert await next_msg(sub) == (ch + ".b", b"4")
    assert await nothing_more(sub)
    await sub.close()
    await ps.publish(ch + ".b", b"5")
    assert await nothing_more(sub)


async def test_one_subscriber_leaving_does_not_unsubscribe_the_others(process_backends, ch):
    ps = process_backends.pubsub
    a, b = await ps.subscribe([ch]), await ps.subscribe([ch])
    await a.close()
    await ps.publish(ch, b"still here")
    assert await next_msg(b) == (ch, b"still here")
    await b.close()


async def test_a_subscriber_that_falls_behind_gets_overflow_once(process_backends, ch):
    ps = process_backends.pubsub
    slow = await ps.subscribe([ch])
    keeping_up = await ps.subscribe([ch])
    for i in range(1100):  # the bound is 1024 pending per subscription
        await ps.publish(ch, str(i).encode())
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # let delivery happen (Redis: a reader task)
            while not keeping_up._queue.empty():
                await keeping_up.get()
    await asyncio.sleep(0.2)
    with pytest.raises(SubscriptionOverflow):
        await next_msg(slow)
    await ps.publish(ch, b"after")
    assert await next_msg(slow) == (ch, b"after")  # reported once, then back to normal
    got = []
    async with asyncio.timeout(3):
        while not got or got[-1] != b"after":
            got.append((await keeping_up.get())[1])
    assert b"after" in got  # the other subscriber never overflowed
    await slow.close()
    await keeping_up.close()


async def test_redis_multiplexes_one_connection_per_process(backend_settings, ch):
    import redis.asyncio as aioredis

    from services.runtime.backends import build_backends

    settings = backend_settings(cache="redis")
    backends = await build_backends(settings)
    ps = backends.pubsub
    subs = [await ps.subscribe([ch]) for _ in range(5)]
    raw = aioredis.Redis.from_url(settings.backends.redis_url)
    try:
        numsub = dict(await raw.pubsub_numsub(ps.channel_name(ch)))
        assert numsub[ps.channel_name(ch).encode()] == 1
        for sub in subs:
            await sub.close()
        numsub = dict(await raw.pubsub_numsub(ps.channel_name(ch)))
        assert numsub[ps.channel_name(ch).encode()] == 0
    finally:
        await raw.aclose()
        await backends.close()
