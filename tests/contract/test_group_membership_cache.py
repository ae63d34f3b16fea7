"""The group membership cache (services/group/membership.py) on MemoryCache and RedisCache:
hits within the TTL, expiry after it, and a drop on every kind of change, seen at once by a
second group service instance sharing the same cache (two replicas on one Redis; in memory,
two domains of one process) and the same database."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.group.domain import GroupDomain
from services.group.sqlite import SqliteGroupStore
from services.group.store import Role
from services.runtime.config import GroupSettings
from services.runtime.context import Principal
from services.runtime.errors import NotFound, PermissionDenied
from tests.unit.group.conftest import KnownUsers, RecordingRelay

pytestmark = pytest.mark.timeout(30)


class CountingStore:
    """The SQLite store, counting the reads the membership cache falls back to."""

    def __init__(self, store: SqliteGroupStore) -> None:
        self._store = store
        self.reads = 0
        self.pause_list_members: asyncio.Event | None = None
        self.in_list_members = asyncio.Event()

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def get_group(self, group_id):
        self.reads += 1
        return await self._store.get_group(group_id)

    async def list_members(self, group_id, *, after_seq, limit):
        self.reads += 1
        rows = await self._store.list_members(group_id, after_seq=after_seq, limit=limit)
        if self.pause_list_members is not None:
            self.in_list_members.set()
            await self.pause_list_members.wait()
        return rows


class Replicas:
    def __init__(self, store, cache, ttl_s: float) -> None:
        self.users = KnownUsers()
        settings = GroupSettings(membership_cache_ttl_s=ttl_s)
        self.a_store, self.b_store = CountingStore(store), CountingStore(store)
        self.a = GroupDomain(self.a_store, self.users, RecordingRelay(), settings, cache=cache)
        self.b = GroupDomain(self.b_store, self.users, RecordingRelay(), settings, cache=cache)

    def user(self) -> Principal:
        p = Principal(user_id=str(uuid.uuid4()), device_id=str(uuid.uuid4()))
        self.users.ids.add(p.user_id)
        return p


@pytest.fixture
async def store(tmp_path):
    s = await SqliteGroupStore.open(tmp_path / "group.sqlite3")
    yield s
    await s.close()


@pytest.fixture
def replicas(process_backends, store):
    return Replicas(store, process_backends.cache, ttl_s=600)


async def members(domain, caller, gid) -> dict[str, Role]:
    page = await domain.list_members(caller, gid, 1000, "")
    return {m.user_id: m.role for m in page.items}


async def test_reads_within_the_ttl_are_served_from_the_cache(replicas):
    r = replicas
    owner, m = r.user(), r.user()
    gid = (await r.a.create_group(owner, "team", "", False, [m.user_id])).group.id
    first = await r.b.get_group(m, gid)
    reads = r.b_store.reads
    assert reads > 0
    for _ in range(3):
        assert await r.b.get_group(m, gid) == first
        assert await members(r.b, owner, gid) == {owner.user_id: Role.OWNER,
                                                  m.user_id: Role.MEMBER}
    assert r.b_store.reads == reads  # no database read for any of them
    # The other replica reads the same shared entry.
    assert (await r.a.get_group(owner, gid)).group == first.group
    assert r.a_store.reads == 0


async def test_entries_expire_after_the_ttl(process_backends, store):
    r = Replicas(store, process_backends.cache, ttl_s=0.2)
    owner = r.user()
    gid = (await r.a.create_group(owner, "team", "", False, [])).group.id
    await r.a.get_group(owner, gid)
    reads = r.a_store.reads
    await r.a.get_group(owner, gid)
    assert r.a_store.reads == reads
    await asyncio.sleep(0.35)
    await r.a.get_group(owner, gid)
    assert r.a_store.reads > reads


async def _add(r, gid, owner, other, new):
    await r.a.add_members(owner, gid, [new.user_id])


async def _remove(r, gid, owner, other, new):
    await r.a.remove_members(owner, gid, [other.user_id])


async def _promote(r, gid, owner, other, new):
    await r.a.update_member_role(owner, gid, other.user_id, Role.ADMIN)


async def _transfer(r, gid, owner, other, new):
    await r.a.update_member_role(owner, gid, other.user_id, Role.OWNER)


async def _member_leaves(r, gid, owner, other, new):
    await r.a.leave_group(other, gid, None)


async def _owner_leaves(r, gid, owner, other, new):
    await r.a.leave_group(owner, gid, None)


async def _join_by_invite(r, gid, owner, other, new):
    invite = await r.a.create_invite(owner, gid, None, 0)
    await r.a.join_group(new, invite.token)


async def _rename(r, gid, owner, other, new):
    await r.a.update_group(owner, gid, "", {"display_name": "renamed", "description": "",
                                            "discoverable": False}, ["display_name"])


async def _delete(r, gid, owner, other, new):
    await r.a.delete_group(owner, gid, "")


CHANGES = [_add, _remove, _promote, _transfer, _member_leaves, _owner_leaves,
           _join_by_invite, _rename, _delete]


@pytest.mark.parametrize("change", CHANGES, ids=[c.__name__.strip("_") for c in CHANGES])
async def test_every_change_through_one_replica_is_seen_at_once_by_the_other(replicas,
                                                                             change):
    r = replicas
    owner, other, new = r.user(), r.user(), r.user()
    gid = (await r.a.create_group(owner, "team", "", False, [other.user_id])).group.id
    await r.b.get_group(owner, gid)  # warm the shared entry through replica b
    await r.b.get_group(other, gid)
    await change(r, gid, owner, other, new)
    reads = r.b_store.reads
    try:
        fresh = await r.b.get_group(owner, gid)
    except NotFound:
        fresh = None
    assert r.b_store.reads > reads  # the entry was dropped: b went to the database
    truth = await r.a_store._store.get_group(gid)
    if truth is None:
        assert fresh is None
        return
    expected = {m.user_id: m.role for m in
                await r.a_store._store.list_members(gid, after_seq=None, limit=100)}
    viewer = owner if owner.user_id in expected else other
    assert await members(r.b, viewer, gid) == expected
    view = await r.b.get_group(viewer, gid)
    assert view.group.revision == truth.revision
    assert view.group.display_name == truth.display_name
    assert view.group.member_count == len(expected)


async def test_a_removed_member_is_refused_at_once_although_the_cache_was_warm(replicas):
    r = replicas
    owner, admin, m = r.user(), r.user(), r.user()
    gid = (await r.a.create_group(owner, "team", "", False,
                                  [admin.user_id, m.user_id])).group.id
    await r.a.update_member_role(owner, gid, admin.user_id, Role.ADMIN)
    for p in (owner, admin, m):
        await r.b.get_group(p, gid)
        await members(r.b, p, gid)
    await r.b.list_invites(admin, gid, 10, "")
    await r.a.remove_members(owner, gid, [m.user_id])
    await r.a.update_member_role(owner, gid, admin.user_id, Role.MEMBER)
    with pytest.raises(NotFound):
        await r.b.get_group(m, gid)
    with pytest.raises(NotFound):
        await r.b.list_members(m, gid, 10, "")
    with pytest.raises(NotFound):
        await r.b.create_invite(m, gid, None, 0)
    with pytest.raises(PermissionDenied):
        await r.b.list_invites(admin, gid, 10, "")
    with pytest.raises(PermissionDenied):
        await r.b.create_invite(admin, gid, None, 0)


async def test_a_read_racing_a_change_never_caches_what_the_change_replaced(replicas):
    """b reads the database before a's change commits and writes its copy to the cache after
    a dropped the entry: that copy carries the old generation and is never served."""
    r = replicas
    owner, m = r.user(), r.user()
    gid = (await r.a.create_group(owner, "team", "", False, [m.user_id])).group.id
    r.b_store.pause_list_members = asyncio.Event()
    reader = asyncio.create_task(r.b.get_group(m, gid))
    await asyncio.wait_for(r.b_store.in_list_members.wait(), 5)
    await r.a.remove_members(owner, gid, [m.user_id])  # commits and drops meanwhile
    r.b_store.pause_list_members.set()
    stale = await reader  # b answers from what it read (the call began before the removal)
    assert stale.caller_role is Role.MEMBER
    r.b_store.pause_list_members = None
    with pytest.raises(NotFound):
        await r.b.get_group(m, gid)
    with pytest.raises(NotFound):
        await r.a.get_group(m, gid)
