"""The group domain over the real SQLite adapter (in a temporary directory), with a
controllable clock, a directory of known users and a relay that only records commits (the
relay itself is tested in test_relay.py and over gRPC in tests/integration/group)."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from services.group.domain import GroupDomain
from services.group.sqlite import SqliteGroupStore
from services.group.store import PendingChange
from services.runtime.config import GroupSettings
from services.runtime.context import Principal
from tests.support.clock import FakeClock
from zynk.messaging.v1 import messaging_pb2


class KnownUsers:
    """The users that exist (what auth's ListActiveDevices would answer)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    async def existing(self, user_ids):
        return {u for u in user_ids if u in self.ids}


class RecordingRelay:
    def __init__(self) -> None:
        self.commits: list[str] = []

    async def committed(self, group_id: str) -> None:
        self.commits.append(group_id)


@dataclasses.dataclass
class Env:
    store: SqliteGroupStore
    users: KnownUsers
    relay: RecordingRelay
    clock: FakeClock
    settings: GroupSettings
    domain: GroupDomain

    def user(self) -> Principal:
        p = Principal(user_id=str(uuid.uuid4()), device_id=str(uuid.uuid4()))
        self.users.ids.add(p.user_id)
        return p

    def with_settings(self, **kw) -> GroupDomain:
        self.settings = self.settings.model_copy(update=kw)
        self.domain = GroupDomain(self.store, self.users, self.relay, self.settings,
                                  clock=self.clock)
        return self.domain

    async def changes(self, group_id: str) -> list[messaging_pb2.ApplyGroupMembershipChangeRequest]:
        rows: list[PendingChange] = await self.store.pending_changes(group_id, 1000)
        return [messaging_pb2.ApplyGroupMembershipChangeRequest.FromString(r.request)
                for r in rows]


@pytest.fixture
async def env(tmp_path):
    store = await SqliteGroupStore.open(tmp_path / "group.sqlite3")
    users, relay, clock = KnownUsers(), RecordingRelay(), FakeClock()
    settings = GroupSettings()
    yield Env(store, users, relay, clock, settings,
              GroupDomain(store, users, relay, settings, clock=clock))
    await store.close()
