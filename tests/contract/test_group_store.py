"""The group store contract: one suite, run against every adapter (sqlite, postgres).

The concurrency cases at the end are the ones that differ: SQLite serialises writers by
itself, PostgreSQL only through the locks and conditional statements the adapter takes."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import pathlib
import uuid
from collections.abc import Awaitable, Callable

import pytest

from services.group.postgres import PostgresGroupStore
from services.group.sqlite import SqliteGroupStore
from services.group.store import GroupRow, GroupStore, InviteRow, MemberRow, PendingChange, Role
from tests.support.outbox import postgres_outbox, sqlite_outbox
from tests.support.postgres import open_test_database
from zynk.group.v1 import group_pb2

PG_MIGRATIONS = pathlib.Path(__file__).parents[2] / "services/group/migrations/postgres"

pytestmark = pytest.mark.timeout(60)


@dataclasses.dataclass
class Adapter:
    store: GroupStore
    events: Callable[[], Awaitable[list[tuple[str, ...]]]]  # (event id, topic, key, type)


@pytest.fixture(params=["sqlite", "postgres"])
async def adapter(request, tmp_path):
    if request.param == "sqlite":
        store = await SqliteGroupStore.open(tmp_path / "group.sqlite3")
        events = functools.partial(sqlite_outbox, store.db)
    else:
        # Asked for here, not as a parameter of the fixture, so that SQLite still runs
        # where PostgreSQL is absent.
        url = request.getfixturevalue("postgres_url")
        store = PostgresGroupStore(await open_test_database(
            url, [PG_MIGRATIONS], schema=f"group_{uuid.uuid4().hex}"))
        events = functools.partial(postgres_outbox, store.db)
    yield Adapter(store, events)
    await store.close()


class Boom(Exception):
    pass


def new_group(owner: str = "owner", t: float = 1000.0, **kw) -> GroupRow:
    return GroupRow(id=str(uuid.uuid4()), display_name=kw.pop("display_name", "g"),
                    description="", discoverable=False, owner_id=owner, create_time=t,
                    update_time=t, **kw)


async def setup_group(store: GroupStore, owner: str, *others: str,
                      t: float = 1000.0) -> tuple[GroupRow, list[MemberRow]]:
    g = new_group(owner, t)
    async with store.transaction() as tx:
        await tx.insert_group(g)
        rows = await tx.insert_members(
            [MemberRow(g.id, owner, Role.OWNER, t)]
            + [MemberRow(g.id, u, Role.MEMBER, t, added_by=owner) for u in others])
    return g, rows


def change(group_id: str, t: float = 1000.0) -> PendingChange:
    return PendingChange(str(uuid.uuid4()), group_id, b"\x0a\x01x", t)


def invite(group_id: str, **kw) -> InviteRow:
    base = dict(id=str(uuid.uuid4()), group_id=group_id, token_hash=uuid.uuid4().bytes * 2,
                creator_id="owner", create_time=1000.0, expire_time=2000.0, max_uses=0)
    return InviteRow(**{**base, **kw})


# -- groups and members --------------------------------------------------------------------


async def test_groups_and_member_counts(adapter):
    s = adapter.store
    g, rows = await setup_group(s, "o", "a", "b")
    assert [r.seq for r in rows] == sorted(r.seq for r in rows) and len({r.seq for r in rows}) == 3
    got = await s.get_group(g.id)
    assert got == dataclasses.replace(g, member_count=3)
    async with s.transaction() as tx:
        assert await tx.get_group(g.id) == got
        await tx.update_group(dataclasses.replace(g, display_name="new", description="d",
                                                  discoverable=True, owner_id="a",
                                                  update_time=1500.0, revision=7))
        assert await tx.count_owned_groups("a") == 1 and await tx.count_owned_groups("o") == 0
    got = await s.get_group(g.id)
    assert (got.display_name, got.description, got.discoverable, got.owner_id,
            got.update_time, got.revision) == ("new", "d", True, "a", 1500.0, 7)
    assert got.create_time == 1000.0
    assert await s.get_group("missing") is None


async def test_members_roles_and_order(adapter):
    s = adapter.store
    g, _ = await setup_group(s, "o", "a", "b", "c")
    async with s.transaction() as tx:
        await tx.set_role(g.id, "b", Role.ADMIN)
        assert await tx.list_admins(g.id) == ["o", "b"]
        assert [m.user_id for m in await tx.list_all_members(g.id)] == ["o", "a", "b", "c"]
        assert await tx.delete_members(g.id, ["a", "nobody"]) == 1
        (late,) = await tx.insert_members([MemberRow(g.id, "a", Role.MEMBER, 1100.0,
                                                     invite_id="inv")])
        assert (await tx.get_member(g.id, "a")) == late
    among = await s.get_members(g.id, ["b", "c", "nobody", "b"])
    assert sorted(among) == ["b", "c"] and among["b"].role is Role.ADMIN
    async with s.transaction() as tx:
        assert sorted(await tx.get_members(g.id, ["a", "o", "x"])) == ["a", "o"]
    m = await s.get_member(g.id, "b")
    assert (m.role, m.added_by, m.join_time) == (Role.ADMIN, "o", 1000.0)
    assert await s.get_member(g.id, "nobody") is None
    # A re-joined member is the most recent membership.
    page1 = await s.list_members(g.id, after_seq=None, limit=2)
    page2 = await s.list_members(g.id, after_seq=page1[-1].seq, limit=10)
    assert [x.user_id for x in page1 + page2] == ["o", "b", "c", "a"]
    assert page2[-1].invite_id == "inv"


async def test_a_group_has_at_most_one_owner(adapter):
    s = adapter.store
    g, _ = await setup_group(s, "o", "a")
    with pytest.raises(Exception):  # noqa: B017 - any adapter's integrity error
        async with s.transaction() as tx:
            await tx.set_role(g.id, "a", Role.OWNER)
    assert (await s.get_member(g.id, "a")).role is Role.MEMBER


async def test_a_user_is_a_member_once(adapter):
    s = adapter.store
    g, _ = await setup_group(s, "o", "a")
    with pytest.raises(Exception):  # noqa: B017 - any adapter's integrity error
        async with s.transaction() as tx:
            await tx.insert_members([MemberRow(g.id, "a", Role.MEMBER, 1.0)])
    assert (await s.get_group(g.id)).member_count == 2


async def test_list_groups_of_a_user_most_recent_first(adapter):
    s = adapter.store
    g1, _ = await setup_group(s, "u")
    g2, _ = await setup_group(s, "x", "u")
    g3, _ = await setup_group(s, "u", "x")
    views = await s.list_groups_of("u", before_seq=None, limit=10)
    assert [v.group.id for v in views] == [g3.id, g2.id, g1.id]
    assert [v.member.role for v in views] == [Role.OWNER, Role.MEMBER, Role.OWNER]
    assert [v.group.member_count for v in views] == [2, 2, 1]
    rest = await s.list_groups_of("u", before_seq=views[0].member.seq, limit=1)
    assert [v.group.id for v in rest] == [g2.id]
    assert await s.list_groups_of("nobody", before_seq=None, limit=10) == []


async def test_deleting_a_group_takes_members_and_invites_not_pending_changes(adapter):
    s = adapter.store
    g, _ = await setup_group(s, "o", "a")
    inv = invite(g.id)
    async with s.transaction() as tx:
        await tx.insert_invite(inv)
        await tx.add_pending_change(change(g.id))
        await tx.delete_group(g.id)
        assert await tx.get_invite_by_token_hash(inv.token_hash) is None
    assert await s.get_group(g.id) is None and await s.get_member(g.id, "a") is None
    assert await s.list_groups_of("o", before_seq=None, limit=10) == []
    assert len(await s.pending_changes(g.id, 10)) == 1


async def test_a_failed_transaction_writes_nothing(adapter):
    s = adapter.store
    g = new_group()
    with pytest.raises(Boom):
        async with s.transaction() as tx:
            await tx.insert_group(g)
            await tx.insert_members([MemberRow(g.id, "o", Role.OWNER, 1.0)])
            await tx.add_pending_change(change(g.id))
            await tx.add_event("groups.created", g.id, group_pb2.Group(name="groups/x"), "e1")
            raise Boom
    assert await s.get_group(g.id) is None
    assert await s.pending_groups(10) == [] and await adapter.events() == []
    async with s.transaction() as tx:
        await tx.insert_group(g)
        await tx.add_event("groups.created", g.id, group_pb2.Group(name="groups/x"), "e2")
    assert await adapter.events() == [("e2", "groups.created", g.id, "zynk.group.v1.Group")]


# -- invites -------------------------------------------------------------------------------


async def test_invites(adapter):
    s = adapter.store
    g, _ = await setup_group(s, "o")
    unlimited, capped, old = invite(g.id), invite(g.id, max_uses=2), invite(g.id,
                                                                              expire_time=1100.0)
    async with s.transaction() as tx:
        for inv in (unlimited, capped, old):
            stored = await tx.insert_invite(inv)
            assert stored.seq > 0 and dataclasses.replace(stored, seq=0) == inv
        assert (await tx.get_invite(g.id, capped.id)).max_uses == 2
        assert await tx.get_invite("other-group", capped.id) is None
        assert (await tx.get_invite_by_token_hash(old.token_hash)).id == old.id
        assert await tx.count_usable_invites(g.id, 1050.0) == 3
        assert await tx.count_usable_invites(g.id, 1100.0) == 2  # expiry is exclusive
        assert await tx.use_invite(capped.id, 1200.0)
        assert await tx.use_invite(capped.id, 1200.0)
        assert not await tx.use_invite(capped.id, 1200.0)  # used up
        assert not await tx.use_invite(old.id, 1200.0)  # expired
        assert not await tx.use_invite(unlimited.id, 2000.0)  # expired right at expire_time
        assert await tx.use_invite(unlimited.id, 1999.0)
        assert (await tx.get_invite(g.id, capped.id)).use_count == 2
    listed = await s.list_usable_invites(g.id, 1200.0, after_seq=None, limit=10)
    assert [i.id for i in listed] == [unlimited.id]
    async with s.transaction() as tx:
        await tx.delete_invite(unlimited.id)
        assert await tx.get_invite(g.id, unlimited.id) is None
        assert await tx.purge_invites(g.id, 1500.0) == 1  # `old` expired at 1100
        assert await tx.get_invite(g.id, old.id) is None
        assert await tx.get_invite(g.id, capped.id) is not None


async def test_list_usable_invites_pages(adapter):
    s = adapter.store
    g, _ = await setup_group(s, "o")
    async with s.transaction() as tx:
        made = [await tx.insert_invite(invite(g.id)) for _ in range(3)]
    first = await s.list_usable_invites(g.id, 1000.0, after_seq=None, limit=2)
    rest = await s.list_usable_invites(g.id, 1000.0, after_seq=first[-1].seq, limit=2)
    assert [i.id for i in first + rest] == [i.id for i in made]


async def test_concurrent_uses_never_exceed_max_uses(adapter):
    s = adapter.store
    g, _ = await setup_group(s, "o")
    inv = invite(g.id, max_uses=3)
    async with s.transaction() as tx:
        await tx.insert_invite(inv)

    async def use() -> bool:
        async with s.transaction() as tx:
            return await tx.use_invite(inv.id, 1500.0)

    results = await asyncio.gather(*(use() for _ in range(10)))
    assert sum(results) == 3


# -- pending changes and relay leases --------------------------------------------------------


async def test_pending_changes_in_order(adapter):
    s = adapter.store
    a1, b1, a2 = change("a"), change("b"), change("a")
    async with s.transaction() as tx:
        for c in (a1, b1, a2):
            await tx.add_pending_change(c)
    assert await s.pending_groups(10) == ["a", "b"]
    rows = await s.pending_changes("a", 10)
    assert [r.change_id for r in rows] == [a1.change_id, a2.change_id]
    assert rows[0].request == a1.request and rows[0].seq < rows[1].seq
    await s.complete_change(rows[0].seq)
    assert [r.change_id for r in await s.pending_changes("a", 10)] == [a2.change_id]
    # "b" now holds the oldest change
    assert await s.pending_groups(10) == ["b", "a"]
    assert await s.pending_groups(1) == ["b"]


async def test_relay_leases(adapter):
    s = adapter.store
    assert await s.acquire_relay_lease("g", "a", 100.0, 130.0)
    assert await s.acquire_relay_lease("g", "a", 110.0, 140.0)  # the holder extends it
    assert not await s.acquire_relay_lease("g", "b", 120.0, 150.0)
    assert await s.acquire_relay_lease("other", "b", 120.0, 150.0)
    await s.release_relay_lease("g", "b")  # not b's: no effect
    assert not await s.acquire_relay_lease("g", "b", 139.0, 170.0)
    assert await s.acquire_relay_lease("g", "b", 140.0, 170.0)  # expired: taken over
    assert not await s.acquire_relay_lease("g", "a", 150.0, 180.0)
    await s.release_relay_lease("g", "b")
    assert await s.acquire_relay_lease("g", "a", 150.0, 180.0)


# -- concurrency: what replicas sharing one database may do to each other -------------------
# Each case races transactions that read and then write; SQLite runs them one at a time,
# PostgreSQL must come to the same result through its locks.

RACERS = 10


async def test_concurrent_creations_never_exceed_the_owned_groups_limit(adapter):
    s = adapter.store

    async def create() -> bool:
        async with s.transaction() as tx:
            if await tx.count_owned_groups("u") >= 3:
                return False
            await tx.insert_group(new_group("u"))
            return True

    assert sum(await asyncio.gather(*(create() for _ in range(RACERS)))) == 3
    async with s.transaction() as tx:
        assert await tx.count_owned_groups("u") == 3


async def test_concurrent_joins_never_exceed_the_member_limit(adapter):
    s = adapter.store
    g, _ = await setup_group(s, "o")

    async def join(user: str) -> bool:
        async with s.transaction() as tx:
            group = await tx.get_group(g.id)
            if group.member_count >= 4:
                return False
            await tx.insert_members([MemberRow(g.id, user, Role.MEMBER, 1001.0)])
            return True

    results = await asyncio.gather(*(join(f"j{i}") for i in range(RACERS)))
    assert sum(results) == 3
    assert (await s.get_group(g.id)).member_count == 4


async def test_concurrent_invite_creation_stops_at_the_limit(adapter):
    s = adapter.store
    g, _ = await setup_group(s, "o")

    async def create() -> bool:
        async with s.transaction() as tx:
            await tx.get_group(g.id)
            if await tx.count_usable_invites(g.id, 1000.0) >= 4:
                return False
            await tx.insert_invite(invite(g.id))
            return True

    assert sum(await asyncio.gather(*(create() for _ in range(RACERS)))) == 4
    assert len(await s.list_usable_invites(g.id, 1000.0, after_seq=None, limit=100)) == 4


async def test_concurrent_ownership_transfers_leave_one_owner(adapter):
    s = adapter.store
    heirs = [f"h{i}" for i in range(RACERS)]
    g, _ = await setup_group(s, "o", *heirs)

    async def transfer(heir: str) -> bool:
        # What UpdateMemberRole(OWNER) does: the caller must still be the owner.
        async with s.transaction() as tx:
            group = await tx.get_group(g.id)
            if (await tx.get_member(g.id, "o")).role is not Role.OWNER:
                return False
            await tx.set_role(g.id, "o", Role.ADMIN)
            await tx.set_role(g.id, heir, Role.OWNER)
            await tx.update_group(dataclasses.replace(group, owner_id=heir,
                                                      revision=group.revision + 1))
            return True

    results = await asyncio.gather(*(transfer(h) for h in heirs))
    assert sum(results) == 1
    (winner,) = [h for h, won in zip(heirs, results, strict=True) if won]
    owners = [m.user_id for m in await s.list_members(g.id, after_seq=None, limit=100)
              if m.role is Role.OWNER]
    group = await s.get_group(g.id)
    assert owners == [winner] and group.owner_id == winner and group.revision == 2


async def test_a_join_sees_the_invite_revoked_before_it(adapter):
    s = adapter.store
    g, _ = await setup_group(s, "o")
    inv = invite(g.id)
    async with s.transaction() as tx:
        await tx.insert_invite(inv)

    async def look_up() -> InviteRow | None:
        async with s.transaction() as tx:
            return await tx.get_invite_by_token_hash(inv.token_hash)

    async with s.transaction() as tx:
        await tx.get_group(g.id)
        await tx.delete_invite(inv.id)
        joining = asyncio.create_task(look_up())
        await asyncio.sleep(0.1)  # the join has started and waits for the revocation
    assert await joining is None


async def test_pending_changes_follow_the_commit_order_of_their_group(adapter):
    s = adapter.store
    g, _ = await setup_group(s, "o")

    async def change_group() -> None:
        # Each writes the revision it made; the relay must see them in that order.
        async with s.transaction() as tx:
            group = await tx.get_group(g.id)
            await tx.update_group(dataclasses.replace(group, revision=group.revision + 1))
            await tx.add_pending_change(PendingChange(
                str(uuid.uuid4()), g.id, str(group.revision + 1).encode(), 1000.0))

    await asyncio.gather(*(change_group() for _ in range(RACERS)))
    rows = await s.pending_changes(g.id, 100)
    assert [int(r.request) for r in rows] == list(range(2, RACERS + 2))


async def test_one_relay_at_a_time_gets_a_lease(adapter):
    s = adapter.store
    won = await asyncio.gather(*(s.acquire_relay_lease("g", f"r{i}", 100.0, 130.0)
                                 for i in range(RACERS)))
    assert sum(won) == 1
