"""The Redis presence store against a private redis-server that the tests stop, freeze and
restart: UNAVAILABLE quickly (never a hang) while Redis is away, working again once it is
back, and no expiry report lost or doubled when Redis ran a sweep whose reply never came."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from services.presence.redis import RedisPresenceStore
from services.presence.store import UserPresence
from services.runtime.errors import Unavailable
from tests.support.backends import KEY_PREFIX, make_settings

pytestmark = pytest.mark.timeout(60)

T = 1_700_000_000.0
TTL = 60.0
TIMEOUT_S = 0.3
# Two attempts (one retry) with connect and read timeouts, and some slack.
WITHIN_S = 6 * TIMEOUT_S + 1.0


def store_on(url: str) -> RedisPresenceStore:
    backends = make_settings(cache="redis", redis_url=url, redis_timeout_s=TIMEOUT_S).backends
    return RedisPresenceStore.from_settings(backends, 3600.0)


async def fails_quickly(coro) -> None:
    t0 = time.monotonic()
    with pytest.raises(Unavailable) as ei:
        await coro
    assert time.monotonic() - t0 < WITHIN_S
    assert ei.value.reason == "BACKEND_UNAVAILABLE"


def every_call(store: RedisPresenceStore):
    return [store.heartbeat("u", "d", T, T + TTL), store.sign_off("u", "d", T),
            store.expire(T, 10), store.get(["u"], T)]


async def test_a_stopped_redis_gives_unavailable_and_a_restart_heals(redis_process):
    store = store_on(redis_process.url)
    try:
        assert (await store.heartbeat("u", "d", T, T + TTL)).changed
        redis_process.stop()
        for call in every_call(store):
            await fails_quickly(call)
        redis_process.start()  # empty (no persistence) and without the scripts loaded
        assert await store.get(["u"], T + 1) == [UserPresence("u", False, None, None)]
        assert (await store.heartbeat("u", "d", T + 2, T + 2 + TTL)).changed
        assert await store.expire(T + 2 + TTL, 10) == [
            UserPresence("u", False, T + 2 + TTL, T + 2)]
    finally:
        await store.close()


async def test_a_frozen_redis_times_out_instead_of_hanging(redis_process):
    store = store_on(redis_process.url)
    try:
        await store.heartbeat("u", "d", T, T + TTL)
        redis_process.pause()
        try:
            await asyncio.gather(*map(fails_quickly, every_call(store)))
        finally:
            redis_process.resume()
    finally:
        await store.close()


async def test_a_sweep_whose_reply_was_lost_is_reported_by_the_next_call(redis_process):
    a, b = store_on(redis_process.url), store_on(redis_process.url)
    probe = aioredis.Redis.from_url(redis_process.url)
    users = [f"user{i}" for i in range(5)]
    try:
        for u in users:
            await a.heartbeat(u, "d", T, T + TTL)
        assert await a.expire(T, 100) == []  # loads the script, as any running sweeper has
        # Frozen: the sweep (and its retry) are sent, the client gives up waiting...
        redis_process.pause()
        try:
            await fails_quickly(a.expire(T + TTL, 100))
        finally:
            redis_process.resume()
        # ...and Redis, resumed, runs what was sent: the leases are dropped, the users are
        # offline, but nobody was told.
        ran = False
        async with asyncio.timeout(5):
            while not ran:
                ran = await probe.zcard(f"{KEY_PREFIX}presence:expiry") == 0
                await asyncio.sleep(0.02)
        assert await b.expire(T + TTL, 100) == []  # another replica finds nothing to report
        reported = await a.expire(T + TTL + 1, 100)  # the sweeper's next tick
        assert sorted(p.user_id for p in reported) == users
        assert all(p == UserPresence(p.user_id, False, T + TTL, T) for p in reported)
        assert await a.expire(T + TTL + 2, 100) == [] and await b.expire(T + TTL + 2, 100) == []
        # The result was received, so the call after that deleted it.
        assert [k async for k in probe.scan_iter(match="*presence:sweep:*")] == []
    finally:
        await probe.aclose()
        await a.close()
        await b.close()
