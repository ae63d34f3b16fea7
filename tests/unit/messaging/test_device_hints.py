"""Messaging drops a cached device list as soon as auth hints the user's devices changed,
without waiting for the devices.changed event (which a Kafka consumer may get seconds later:
a new device would miss the messages sent meanwhile)."""

from __future__ import annotations

import asyncio

from services.messaging.devices import DeviceDirectory, cache_key
from services.runtime import hints
from services.runtime.cache import MemoryCache
from services.runtime.pubsub import MemoryPubSub


async def test_a_hint_drops_the_cached_list_at_once():
    known = {"u1": ("d1",)}
    calls = []

    async def fetch(users):
        calls.append(list(users))
        return {u: known[u] for u in users if u in known}

    cache, pubsub = MemoryCache(), MemoryPubSub()
    directory = DeviceDirectory(cache, fetch, ttl_s=60)
    follower = asyncio.create_task(directory.follow_hints(pubsub))
    try:
        assert await directory.devices(["u1"]) == {"u1": ("d1",)}
        known["u1"] = ("d1", "d2")  # a second device logged in
        assert await directory.devices(["u1"]) == {"u1": ("d1",)}  # cached
        await asyncio.sleep(0)  # let the follower subscribe
        await pubsub.publish(hints.DEVICES_CHANGED, b"u1")
        for _ in range(100):
            if await cache.get(cache_key("u1")) is None:
                break
            await asyncio.sleep(0.01)
        assert await directory.devices(["u1"]) == {"u1": ("d1", "d2")}
        assert calls == [["u1"], ["u1"]]
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
