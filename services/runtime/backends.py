"""Builds a process's runtime backends from Settings.backends, in one place: the bus
(memory | kafka) and the Redis-or-memory group — rate limits, revocations, pub/sub and the
cache (cache = memory | redis). The embedded mesh and the distributed runner both use it.

The bus is returned unstarted: services subscribe first, then the composition root calls
`bus.start()`. `close()` releases everything, bus included, in reverse order. `checks` holds
one health check per external server in use ("redis", "kafka"), each a round trip with that
backend's own client; the process probes them (mesh/health.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from services.runtime import logging as zlog
from services.runtime.bus import EventBus, MemoryEventBus
from services.runtime.cache import Cache, MemoryCache
from services.runtime.config import Settings
from services.runtime.pubsub import MemoryPubSub, PubSub
from services.runtime.ratelimit import MemoryRateLimiter, RateLimiter
from services.runtime.revocations import MemoryRevocationList, RevocationList

log = zlog.get("backends")


@dataclasses.dataclass
class ProcessBackends:
    bus: EventBus
    limiter: RateLimiter
    revocations: RevocationList
    pubsub: PubSub
    cache: Cache
    closers: list[Callable[[], Awaitable[None]]] = dataclasses.field(default_factory=list)
    # name -> coroutine function raising when that server does not answer.
    checks: dict[str, Callable[[], Awaitable[object]]] = dataclasses.field(default_factory=dict)

    async def close(self) -> None:
        while self.closers:
            closer = self.closers.pop()
            try:
                await closer()
            except Exception:
                log.exception("backend did not close cleanly")


async def build_backends(settings: Settings, client_id: str = "zynk") -> ProcessBackends:
    """Raises Unavailable when a configured server cannot be reached (do not come up)."""
    b = settings.backends
    closers: list[Callable[[], Awaitable[None]]] = []
    checks: dict[str, Callable[[], Awaitable[object]]] = {}
    try:
        if b.bus == "kafka":
            from services.runtime.kafka_bus import KafkaEventBus

            kafka = KafkaEventBus.from_settings(b, client_id=client_id)
            checks["kafka"] = kafka.ping
            bus: EventBus = kafka
        else:
            bus = MemoryEventBus()
        closers.append(bus.close)

        if b.cache == "redis":
            from services.runtime.redis_backends import (
                RedisCache,
                RedisRateLimiter,
                RedisRevocationList,
                redis_client,
                unavailable_on_outage,
            )
            from services.runtime.redis_pubsub import RedisPubSub

            client = redis_client(b)
            closers.append(client.aclose)
            async def ping_redis() -> None:
                with unavailable_on_outage("redis"):
                    await client.ping()

            await ping_redis()
            checks["redis"] = ping_redis
            listen_client = redis_client(b, retries=0)
            closers.append(listen_client.aclose)
            pubsub = RedisPubSub(client, listen_client, b.key_prefix,
                                 timeout_s=b.redis_timeout_s)
            await pubsub.start()
            closers.append(pubsub.close)
            revocations = RedisRevocationList(client, pubsub, b.key_prefix)
            await revocations.start()
            closers.append(revocations.close)
            return ProcessBackends(bus, RedisRateLimiter(client, b.key_prefix), revocations,
                                   pubsub, RedisCache(client, b.key_prefix), closers, checks)
        memory_pubsub = MemoryPubSub()
        closers.append(memory_pubsub.close)
        return ProcessBackends(bus, MemoryRateLimiter(), MemoryRevocationList(),
                               memory_pubsub, MemoryCache(), closers, checks)
    except BaseException:
        await ProcessBackends(None, None, None, None, None, closers).close()  # type: ignore[arg-type]
        raise
