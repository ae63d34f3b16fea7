"""The presence service's wiring, called by the process's composition root (mesh)."""

from __future__ import annotations

import asyncio
import contextlib

from services.presence.domain import TOPIC_DEVICES_CHANGED, PresenceDomain
from services.presence.memory import MemoryPresenceStore
from services.presence.peers import MESSAGING, MessagingPeers
from services.presence.servicer import PresenceServicer
from services.presence.store import PresenceStore
from services.runtime.server import ServiceSpec
from services.runtime.shared import Shared
from zynk.presence.v1 import presence_pb2_grpc

FULL_NAME = "zynk.presence.v1.PresenceService"


def open_store(shared: Shared) -> PresenceStore:
    """Presence lives where the rest of the cache group does (backends.cache): in this
    process, or in Redis, shared by every replica."""
    backends = shared.settings.backends
    retention_s = shared.settings.presence.last_seen_retention_s
    if backends.cache == "redis":
        from services.presence.redis import RedisPresenceStore

        return RedisPresenceStore.from_settings(backends, retention_s)
    return MemoryPresenceStore(retention_s)


async def build(shared: Shared) -> ServiceSpec:
    settings = shared.settings
    store = open_store(shared)
    peers = MessagingPeers(lambda: shared.channels.get(MESSAGING), shared.cache,
                           settings.presence.visibility_cache_s)
    domain = PresenceDomain(store, peers, shared.pubsub, shared.limiter, settings)
    shared.bus.subscribe(TOPIC_DEVICES_CHANGED, "presence", domain.on_device_changed)
    sweeper = asyncio.create_task(domain.run_sweeper(), name="presence-sweeper")
    servicer = PresenceServicer(domain)

    def register(server) -> None:
        presence_pb2_grpc.add_PresenceServiceServicer_to_server(servicer, server)

    async def stop_sweeper() -> None:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper

    return ServiceSpec(name="presence", full_names=[FULL_NAME], register=register,
                       on_stop=[stop_sweeper, store.close])
