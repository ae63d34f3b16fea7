"""Redis going away and coming back, on a private redis-server: every caller gets a quick
UNAVAILABLE (never a hang) while it is down, and everything works again after a restart —
subscribers are told they missed messages (SubscriptionOverflow) so they resynchronise."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.runtime.backends import build_backends
from services.runtime.config import Rate
from services.runtime.errors import Unavailable
from services.runtime.pubsub import SubscriptionOverflow
from tests.support.backends import free_port, make_settings

pytestmark = pytest.mark.timeout(60)

QUICK_S = 3.0  # two attempts with 1 s socket timeouts, and some slack
HUNG_S = 5.5  # a frozen server: connect + read timeouts on both attempts


async def fails_quickly(coro, within_s: float = QUICK_S) -> Unavailable:
    t0 = time.monotonic()
    with pytest.raises(Unavailable) as ei:
        await coro
    assert time.monotonic() - t0 < within_s
    assert ei.value.reason == "BACKEND_UNAVAILABLE"
    return ei.value


async def test_no_redis_at_start_is_a_clear_error():
    settings = make_settings(cache="redis", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    await fails_quickly(build_backends(settings))


async def test_outage_gives_unavailable_and_a_restart_heals(redis_process):
    settings = make_settings(cache="redis", redis_url=redis_process.url)
    b = await build_backends(settings)
    try:
        sub = await b.pubsub.subscribe(["wake"])
        await b.revocations.revoke("dev-before", time.time() + 60)
        assert await b.revocations.is_revoked("dev-before")
        rate = Rate(per_second=1, burst=5)
        assert (await b.limiter.hit("k", rate)).allowed

        redis_process.stop()
        await fails_quickly(b.pubsub.publish("wake", b"x"))
        await fails_quickly(b.limiter.hit("k", rate))
        await fails_quickly(b.cache.get("c"))
        await fails_quickly(b.cache.set("c", b"v", 10))
        await fails_quickly(b.revocations.revoke("dev", time.time() + 60))
        # Once the subscriber connection is known lost, the local mirror is no longer
        # trusted: a verifier must not accept a token it cannot check.
        async with asyncio.timeout(QUICK_S):
            while not isinstance(await _revoked_or_error(b, "dev-x"), Unavailable):
                await asyncio.sleep(0.05)
        await fails_quickly(b.pubsub.subscribe(["other"]))

        redis_process.start()
        with pytest.raises(SubscriptionOverflow):  # the gap, reported once
            await asyncio.wait_for(sub.get(), 10)
        await b.pubsub.publish("wake", b"after restart")
        assert await asyncio.wait_for(sub.get(), 3) == ("wake", b"after restart")
        assert (await b.limiter.hit("k", rate)).allowed  # script cache was emptied: reloaded
        await b.cache.set("c", b"v", 10)
        assert await b.cache.get("c") == b"v"
        await b.revocations.revoke("dev-after", time.time() + 60)
        assert await b.revocations.is_revoked("dev-after")
        # The mirror is reloaded after the gap and trusted again (no Redis round trip).
        async with asyncio.timeout(5):
            while not b.revocations._mirror_current():
                await asyncio.sleep(0.05)
        # Redis came back empty (no persistence), but a mirror never forgets a revocation
        # before it expires: the safe side.
        assert await b.revocations.is_revoked("dev-before")
        await sub.close()
    finally:
        await b.close()


async def _revoked_or_error(b, device: str):
    try:
        return await b.revocations.is_revoked(device)
    except Unavailable as err:
        return err


async def test_a_frozen_redis_times_out_instead_of_hanging(redis_process):
    b = await build_backends(make_settings(cache="redis", redis_url=redis_process.url))
    try:
        rate = Rate(per_second=1, burst=5)
        assert (await b.limiter.hit("k", rate)).allowed
        redis_process.pause()
        try:
            await asyncio.gather(
                fails_quickly(b.limiter.hit("k", rate), HUNG_S),
                fails_quickly(b.cache.get("c"), HUNG_S),
                fails_quickly(b.pubsub.publish("wake", b"x"), HUNG_S))
        finally:
            redis_process.resume()
        async with asyncio.timeout(10):
            while True:
                try:
                    assert (await b.limiter.hit("k", rate)).allowed
                    break
                except Unavailable:
                    await asyncio.sleep(0.1)
    finally:
        await b.close()
