"""The presence domain over the in-memory store, an injected clock, the runtime's in-process
PubSub and rate limiter, and a membership table standing in for messaging's answers (the
rules are what is under test here; tests/integration talks to a real gRPC server)."""

from __future__ import annotations

import dataclasses
import time

import pytest

from services.presence.domain import PresenceDomain
from services.presence.memory import MemoryPresenceStore
from services.runtime.config import PresenceSettings, Rate, Settings
from services.runtime.context import Principal
from services.runtime.pubsub import MemoryPubSub
from services.runtime.ratelimit import MemoryRateLimiter
from tests.support.auth import auth_test_settings
from tests.support.clock import FakeClock


class TablePeers:
    """Conversations as a table, conversation id -> member ids (what messaging would say)."""

    def __init__(self) -> None:
        self.conversations: dict[str, set[str]] = {}
        self.visibility_calls = 0

    def add(self, conversation_id: str, *members: str) -> None:
        self.conversations.setdefault(conversation_id, set()).update(members)

    async def visible_to(self, viewer_id, user_ids):
        self.visibility_calls += 1
        assert viewer_id not in user_ids
        peers = set().union(*(m for m in self.conversations.values() if viewer_id in m))
        return set(user_ids) & peers

    async def is_member(self, user_id, conversation_id):
        return user_id in self.conversations.get(conversation_id, ())


@dataclasses.dataclass
class PresenceEnv:
    settings: Settings
    store: MemoryPresenceStore
    peers: TablePeers
    pubsub: MemoryPubSub
    clock: FakeClock
    domain: PresenceDomain


def who(user: str, device: str = "d1") -> Principal:
    return Principal(user_id=user, device_id=device)


def make_env(tmp_path, clock=None, limits: dict[str, Rate] | None = None,
             pubsub: MemoryPubSub | None = None, **presence) -> PresenceEnv:
    settings = auth_test_settings(tmp_path)
    for name, rate in (limits or {}).items():
        setattr(settings.rate_limits, name, rate)
    settings.presence = PresenceSettings(**presence)
    store = MemoryPresenceStore(settings.presence.last_seen_retention_s)
    peers = TablePeers()
    pubsub = pubsub or MemoryPubSub()
    clock = clock or FakeClock(1_700_000_000.0)
    domain = PresenceDomain(store, peers, pubsub, MemoryRateLimiter(), settings, clock=clock)
    return PresenceEnv(settings, store, peers, pubsub, clock, domain)


@pytest.fixture
def env(tmp_path) -> PresenceEnv:
    return make_env(tmp_path)


@pytest.fixture
def live_env(tmp_path) -> PresenceEnv:
    """Real wall clock and short timings, for watch streams that wait on time."""
    return make_env(tmp_path, clock=time.time, typing_ttl_s=0.3, keepalive_s=0.25,
                    visibility_cache_s=0.4)
