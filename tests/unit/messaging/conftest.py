"""The messaging domain over the real SQLite store (a temp file; fast), an in-memory device
directory standing in for auth's ListActiveDevices, and a controllable clock."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from services.messaging.conversations import ConversationCache
from services.messaging.devices import DeviceDirectory
from services.messaging.domain import EnvelopeIn, MessagingDomain
from services.messaging.live import InboxPublisher, InboxStreams
from services.messaging.sqlite import SqliteMessageStore
from services.runtime.cache import MemoryCache
from services.runtime.config import MessagingSettings, Rate
from services.runtime.context import Principal
from services.runtime.pubsub import MemoryPubSub
from services.runtime.ratelimit import MemoryRateLimiter
from services.runtime.revocations import MemoryRevocationList
from tests.support.auth import auth_test_settings
from tests.support.clock import FakeClock


class FakeAuth:
    """Active devices by user id, as auth would answer ListActiveDevices."""

    def __init__(self) -> None:
        self.devices: dict[str, list[str]] = {}
        self.calls = 0

    async def fetch(self, user_ids):
        self.calls += 1
        return {u: tuple(self.devices[u]) for u in user_ids if u in self.devices}

    def user(self, devices: int = 1) -> list[Principal]:
        user_id = str(uuid.uuid4())
        self.devices[user_id] = [str(uuid.uuid4()) for _ in range(devices)]
        return [Principal(user_id, d) for d in self.devices[user_id]]


@dataclasses.dataclass
class Env:
    domain: MessagingDomain
    store: SqliteMessageStore
    auth: FakeAuth
    clock: FakeClock
    pubsub: MemoryPubSub
    cache: MemoryCache
    devices: DeviceDirectory

    async def direct(self, a: Principal, b: Principal) -> str:
        row, _ = await self.domain.create_direct(a, [b.user_id])
        return row.id


def envelopes(*recipients: Principal, body: bytes = b"ct") -> list[EnvelopeIn]:
    return [EnvelopeIn(p.device_name, 2, body + p.device_id.encode()) for p in recipients]


@pytest.fixture
async def env(tmp_path):
    settings = auth_test_settings(tmp_path)
    settings.messaging = MessagingSettings(max_send_bytes=10_000, keepalive_s=0.2)
    settings.rate_limits.sends_per_device = Rate(per_second=1, burst=100)
    store = await SqliteMessageStore.open(tmp_path / "messaging.sqlite3")
    auth = FakeAuth()
    clock = FakeClock()
    pubsub, cache = MemoryPubSub(), MemoryCache()
    devices = DeviceDirectory(cache, auth.fetch, 60)
    conversations = ConversationCache(store, pubsub, 30)
    streams = InboxStreams(store, pubsub, MemoryRevocationList(), keepalive_s=0.2,
                           page_size=50, clock=clock)
    domain = MessagingDomain(store, devices, conversations, InboxPublisher(pubsub), streams,
                             MemoryRateLimiter(), settings, clock=clock)
    yield Env(domain, store, auth, clock, pubsub, cache, devices)
    await store.close()
