"""The messaging service's wiring, called by the process's composition root (mesh)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from services.messaging import events, names
from services.messaging.conversations import ConversationCache
from services.messaging.devices import DeviceDirectory, auth_fetcher
from services.messaging.domain import MessagingDomain, run_sweeper
from services.messaging.live import InboxPublisher, InboxStreams
from services.messaging.postgres import PARTITIONED, PostgresMessageStore
from services.messaging.servicer import MessagingServicer
from services.messaging.sqlite import SqliteMessageStore
from services.runtime import logging as zlog
from services.runtime.bus import Event
from services.runtime.config import Settings
from services.runtime.errors import ZynkError
from services.runtime.outbox import OutboxRelay
from services.runtime.partitions import PartitionMaintainer
from services.runtime.server import ServiceSpec
from services.runtime.shared import Shared
from zynk.events.v1 import events_pb2
from zynk.messaging.v1 import messaging_pb2_grpc

log = zlog.get("messaging")

FULL_NAME = "zynk.messaging.v1.MessagingService"
AUTH = "zynk.auth.v1.AuthService"
DEVICES_CONSUMER = "messaging.devices"


async def open_store(settings: Settings) -> SqliteMessageStore | PostgresMessageStore:
    """The adapter the configuration chooses (backends.storage). On PostgreSQL any number of
    replicas may share the database (postgres.py says how they take turns)."""
    if settings.backends.storage == "postgres":
        return await PostgresMessageStore.open(settings)
    return await SqliteMessageStore.open(settings.db_path("messaging"),
                                         write_linger_s=settings.messaging.write_linger_s)


async def build(shared: Shared) -> ServiceSpec:
    settings = shared.settings
    cfg = settings.messaging
    store = await open_store(settings)
    partitions: PartitionMaintainer | None = None
    if isinstance(store, PostgresMessageStore):
        # Messages and envelopes need a partition for the month they are written in: this
        # month's and the next three exist before the service serves, and are kept ahead
        # hourly (by every replica; they take turns).
        partitions = PartitionMaintainer(store.db, PARTITIONED, unit="epoch_s")
        try:
            await partitions.start()
        except BaseException:
            await store.close()
            raise
    # Events are relayed at most every 50 ms: at thousands of sends a second that is one
    # relay pass per ~100 events instead of one per commit.
    relay = OutboxRelay(store.db, shared.bus, min_interval_s=0.05)
    devices = DeviceDirectory(shared.cache, auth_fetcher(lambda: shared.channels.get(AUTH)),
                              cfg.device_cache_ttl_s)
    conversations = ConversationCache(store, shared.pubsub, cfg.conversation_cache_ttl_s)
    streams = InboxStreams(store, shared.pubsub, shared.revocations,
                           keepalive_s=cfg.keepalive_s, page_size=cfg.replay_page_size)
    domain = MessagingDomain(store, devices, conversations, InboxPublisher(shared.pubsub),
                             streams, shared.limiter, settings)

    async def on_device_changed(event: Event) -> None:
        changed = events.device_changed(event.payload)
        if changed is None:
            return
        try:
            user_id, device_id = names.parse_device(changed.device, "device")
        except ZynkError:
            log.warning("devices.changed event with a bad device name; skipped",
                        event_id=event.event_id)
            return
        await domain.device_changed(
            user_id, device_id, changed.change == events_pb2.DeviceChanged.CHANGE_REVOKED)

    try:
        shared.bus.subscribe(events.TOPIC_DEVICES_CHANGED, DEVICES_CONSUMER, on_device_changed)
        await conversations.start()
    except BaseException:
        if partitions is not None:
            await partitions.stop()
        await store.close()
        raise
    relay.start()
    device_hints = asyncio.create_task(devices.follow_hints(shared.pubsub),
                                       name="messaging-device-hints")
    stop_sweeper = asyncio.Event()
    sweeper = asyncio.create_task(run_sweeper(domain, cfg.expiry_sweep_interval_s,
                                              stop_sweeper))
    servicer = MessagingServicer(domain, time.time)

    async def stop() -> None:
        stop_sweeper.set()
        device_hints.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await sweeper
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await device_hints
        await conversations.stop()
        if partitions is not None:
            await partitions.stop()
        await relay.stop()
        await store.close()

    def register(server) -> None:
        messaging_pb2_grpc.add_MessagingServiceServicer_to_server(servicer, server)

    checks = {"postgres": store.db.ping} if isinstance(store, PostgresMessageStore) else {}
    return ServiceSpec(name="messaging", full_names=[FULL_NAME], register=register,
                       on_stop=[stop], health_checks=checks)
