"""The group service over real gRPC with PostgreSQL storage (backends.storage = "postgres").

The store-touching cases of test_group_grpc.py and test_group_relay.py run again here
against this module's `group` and `fresh_group_settings` fixtures (imported test functions
use the fixtures of the module they are collected in). The rest shows what only a shared
database can: two replicas of the service racing over one group's limits and roles, and two
relays sharing one backlog of membership changes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pathlib
import random

import asyncpg
import grpc
import pytest

from services.runtime.config import Settings
from services.runtime.errors import Unavailable
from tests.integration.group.harness import (
    GroupHarness,
    MessagingDouble,
    MessagingHarness,
    group_settings,
    signups,
    start_group,
    start_messaging,
)
from tests.integration.group.test_group_grpc import (  # noqa: F401  (collected here too)
    create_invite,
    join,
    members_of,
    new_group,
    test_add_and_remove_members,
    test_concurrent_joins_never_exceed_max_uses,
    test_concurrent_joins_stop_at_the_member_limit,
    test_create_and_get,
    test_expired_and_used_up_invites,
    test_invite_lifecycle,
    test_list_my_groups_most_recently_joined_first,
    test_members_without_the_role_are_refused,
    test_non_members_get_not_found_for_private_groups_everywhere,
    test_non_members_get_permission_denied_for_discoverable_groups,
    test_ownership_transfer,
    test_succession_when_the_owner_leaves,
    test_the_member_limit,
    test_update_and_delete_with_etags,
)
from tests.integration.group.test_group_relay import (  # noqa: F401  (collected here too)
    summary,
    test_a_retry_after_a_lost_answer_carries_the_same_change_id,
    test_changes_pending_at_a_restart_are_relayed_after_it,
    test_every_kind_of_change_reaches_messaging_in_order,
    test_messaging_down_does_not_fail_the_api_and_the_relay_catches_up,
    wait_until_relayed,
)
from tests.support.grpc_errors import error_details
from tests.support.postgres import on_postgres, temporary_database
from zynk.group.v1 import group_pb2 as pb
from zynk.messaging.v1 import messaging_pb2_grpc

pytestmark = pytest.mark.timeout(60)

CODE = grpc.StatusCode
OWNER, ADMIN, MEMBER = pb.ROLE_OWNER, pb.ROLE_ADMIN, pb.ROLE_MEMBER


def postgres_group_settings(data_dir: pathlib.Path, url: str, **group_overrides) -> Settings:
    return on_postgres(group_settings(data_dir, **group_overrides), url)


@pytest.fixture(scope="module")
async def group(auth, messaging_server, tmp_path_factory, postgres_url):
    harness = await start_group(postgres_group_settings(tmp_path_factory.mktemp("group-pg"),
                                                        postgres_url, max_members=8),
                                auth, messaging_server.address)
    yield harness
    await harness.stop()


@pytest.fixture
def fresh_group_settings(tmp_path, postgres_url):
    """A database of the test's own: the module's service (on the session database) must not
    relay this test's changes to its own messaging double."""
    with temporary_database() as url:
        yield postgres_group_settings(tmp_path, url)


async def test_groups_land_in_the_group_schema(auth, group, messaging, postgres_url):
    owner, m = await signups(auth, 2)
    g = await new_group(group, owner, m)
    conn = await asyncpg.connect(postgres_url)
    try:
        members = await conn.fetchval('SELECT count(*) FROM "group".members WHERE group_id = $1',
                                      g.name.removeprefix("groups/"))
    finally:
        await conn.close()
    assert members == 2
    assert not group.settings.db_path("group").exists()  # nothing went to SQLite


# -- two replicas on one database ----------------------------------------------------------


class SlowMessaging(MessagingDouble):
    """Answers after a random few milliseconds, like a real service over a network, so that
    the replicas' relays overlap in time; refuses a `flaky` share of the calls outright
    (UNAVAILABLE, nothing applied or recorded), so that a group's backlog changes hands
    between the relays half-way."""

    flaky = 0.0

    async def ApplyGroupMembershipChange(self, request, context):
        await asyncio.sleep(random.uniform(0, 0.005))
        if random.random() < self.flaky:
            raise Unavailable("messaging is flaky (test double)")
        return await super().ApplyGroupMembershipChange(request, context)


class Door(messaging_pb2_grpc.MessagingServiceServicer):
    """One messaging server in front of the shared double: each replica gets its own, so the
    test can tell which replica's relay delivered what."""

    def __init__(self, double: MessagingDouble) -> None:
        self.double = double
        self.accepted: list[str] = []  # groups, one entry per accepted change

    async def ApplyGroupMembershipChange(self, request, context):
        response = await self.double.ApplyGroupMembershipChange(request, context)
        self.accepted.append(request.group)
        return response


@dataclasses.dataclass
class Messaging:
    double: SlowMessaging
    doors: list[Door]
    servers: list[MessagingHarness]


@pytest.fixture
async def own_messaging():
    double = SlowMessaging()
    doors = [Door(double), Door(double)]
    servers = [await start_messaging(door) for door in doors]
    yield Messaging(double, doors, servers)
    for server in servers:
        await server.stop()


@contextlib.asynccontextmanager
async def replicas(settings: Settings, auth, messaging: Messaging):
    """Two group services on one database, each relaying through its own messaging door."""
    started: list[GroupHarness] = []
    try:
        for server in messaging.servers:
            started.append(await start_group(settings, auth, server.address))
        yield started
    finally:
        for r in started:
            await r.stop()


def outcomes(results) -> tuple[list, list[tuple[CODE, str]]]:
    ok = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    for f in failed:
        if not isinstance(f, grpc.aio.AioRpcError):
            raise f
    return ok, [(f.code(), error_details(f)[0]) for f in failed]


async def test_replicas_count_invite_uses_exactly(auth, fresh_group_settings, own_messaging):
    async with replicas(fresh_group_settings, auth, own_messaging) as (a, b):
        owner, *joiners = await signups(auth, 10)
        g = await new_group(a, owner)
        inv = await create_invite(b, owner, g, max_uses=3)
        ok, refused = outcomes(await asyncio.gather(
            *(join((a, b)[i % 2], u, inv.token) for i, u in enumerate(joiners)),
            return_exceptions=True))
        assert len(ok) == 3
        assert refused == [(CODE.NOT_FOUND, "INVITE_USED_UP")] * 6
        expected = {owner.name: OWNER, **{r.member.user: MEMBER for r in ok}}
        for replica in (a, b):
            assert await members_of(replica, g, owner) == expected
        # used up, so no longer listed as working
        listed = await b.stub.ListInvites(pb.ListInvitesRequest(parent=g.name),
                                          metadata=owner.md)
        assert list(listed.invites) == []


async def test_replicas_stop_joins_and_adds_at_the_member_limit(auth, fresh_group_settings,
                                                                own_messaging):
    fresh_group_settings.group = fresh_group_settings.group.model_copy(
        update={"max_members": 8})
    async with replicas(fresh_group_settings, auth, own_messaging) as (a, b):
        owner, *users = await signups(auth, 14)
        joiners, pairs = users[:7], [users[7:9], users[9:11], users[11:13]]
        g = await new_group(a, owner)
        inv = await create_invite(a, owner, g)
        calls = [join((a, b)[i % 2], u, inv.token) for i, u in enumerate(joiners)]
        calls += [(b, a)[i % 2].stub.AddMembers(
            pb.AddMembersRequest(group=g.name, users=[u.name for u in pair]),
            metadata=owner.md) for i, pair in enumerate(pairs)]
        # 13 candidates for 7 places, joining and being added at once on both replicas
        results = await asyncio.gather(*calls, return_exceptions=True)
        joined, _ = outcomes(results[:7])
        added, _ = outcomes(results[7:])
        _, refused = outcomes(results)
        assert refused and set(refused) == {(CODE.FAILED_PRECONDITION, "GROUP_FULL")}
        count = 1 + len(joined) + sum(len(r.members) for r in added)
        # a refused pair may leave one place free, a refused join none
        assert 7 <= count <= 8
        got = (await b.stub.GetGroup(pb.GetGroupRequest(name=g.name),
                                     metadata=owner.md)).group
        assert got.member_count == count
        assert len(await members_of(a, g, owner)) == count
        (listed,) = (await a.stub.ListInvites(pb.ListInvitesRequest(parent=g.name),
                                              metadata=owner.md)).invites
        assert listed.use_count == len(joined)  # a refused join spends no use


async def test_replicas_enforce_the_owned_groups_limit_exactly(auth, fresh_group_settings,
                                                               own_messaging):
    fresh_group_settings.group = fresh_group_settings.group.model_copy(
        update={"max_owned_groups": 3})
    async with replicas(fresh_group_settings, auth, own_messaging) as (a, b):
        (owner,) = await signups(auth, 1)
        ok, refused = outcomes(await asyncio.gather(
            *(new_group((a, b)[i % 2], owner, name=f"g{i}") for i in range(8)),
            return_exceptions=True))
        assert len(ok) == 3
        assert refused == [(CODE.RESOURCE_EXHAUSTED, "TOO_MANY_GROUPS")] * 5
        mine = await a.stub.ListGroups(pb.ListGroupsRequest(), metadata=owner.md)
        assert sorted(g.name for g in mine.groups) == sorted(g.name for g in ok)


async def test_replicas_change_roles_one_at_a_time(auth, fresh_group_settings,
                                                   own_messaging):
    messaging = own_messaging.double
    async with replicas(fresh_group_settings, auth, own_messaging) as (a, b):
        owner, *ms = await signups(auth, 5)
        g = await new_group(a, owner, *ms)
        # The owner hands the group to four members at once, through both replicas: the
        # first transfer wins; after it the caller is an admin, and the others are refused.
        ok, refused = outcomes(await asyncio.gather(*(
            (a, b)[i % 2].stub.UpdateMemberRole(pb.UpdateMemberRoleRequest(
                name=f"{g.name}/members/{m.id}", role=OWNER), metadata=owner.md)
            for i, m in enumerate(ms)), return_exceptions=True))
        assert len(ok) == 1
        assert refused == [(CODE.PERMISSION_DENIED, "OWNER_REQUIRED")] * 3
        (heir,) = [m for m in ms if m.name == ok[0].member.user]
        roles = await members_of(b, g, heir)
        assert roles == {owner.name: ADMIN, **{m.name: MEMBER for m in ms}, heir.name: OWNER}
        got = (await a.stub.GetGroup(pb.GetGroupRequest(name=g.name), metadata=heir.md)).group
        assert got.owner == heir.name

        # The heir promotes the other three at once, through both replicas.
        others = [m for m in ms if m is not heir]
        await asyncio.gather(*(
            (a, b)[i % 2].stub.UpdateMemberRole(pb.UpdateMemberRoleRequest(
                name=f"{g.name}/members/{m.id}", role=ADMIN), metadata=heir.md)
            for i, m in enumerate(others)))
        assert set((await members_of(a, g, heir)).values()) == {OWNER, ADMIN}
        # Each change carries the admins after it: in relay order, the list grows by one.
        await messaging.wait_for(lambda: len(messaging.of(g.name)) == 5)
        admins = [set(c.admins) for c in messaging.of(g.name)[1:]]
        assert admins[0] == {owner.name, heir.name}
        for before, after in zip(admins, admins[1:], strict=False):
            assert before < after and len(after) == len(before) + 1
        assert admins[-1] == {owner.name, *(m.name for m in ms)}


async def test_two_relays_send_a_backlog_once_and_in_order(auth, fresh_group_settings,
                                                           own_messaging):
    messaging = own_messaging.double
    messaging.down = True
    async with replicas(fresh_group_settings, auth, own_messaging) as (a, b):
        owner, x, y = await signups(auth, 3)
        groups = [await new_group((a, b)[i % 2], owner, name=f"g{i}") for i in range(4)]
        # Membership flips that only make sense in order, each group's alternating between
        # the replicas, the groups' at once.
        plan = [("add", x), ("add", y), ("remove", x), ("add", x), ("remove", y),
                ("remove", x)]

        async def flips(g: pb.Group) -> None:
            for i, (op, user) in enumerate(plan):
                stub = (a, b)[i % 2].stub
                if op == "add":
                    await stub.AddMembers(pb.AddMembersRequest(group=g.name, users=[user.name]),
                                          metadata=owner.md)
                else:
                    await stub.RemoveMembers(pb.RemoveMembersRequest(
                        group=g.name, users=[user.name]), metadata=owner.md)

        await asyncio.gather(*(flips(g) for g in groups))
        expected = [(owner.name, (owner.name,), (), (owner.name,), False)] + [
            (owner.name, (u.name,) if op == "add" else (), (u.name,) if op == "remove" else (),
             (owner.name,), False) for op, u in plan]
        assert all(messaging.of(g.name) == [] for g in groups)

        flip = len(messaging.calls)
        # Both relays now race for the backlog; a refused call hands a group's rest over to
        # whichever relay takes the lease next.
        messaging.flaky = 0.25
        messaging.down = False
        await messaging.wait_for(
            lambda: all(len(messaging.of(g.name)) == len(expected) for g in groups),
            timeout=10)
        for g in groups:
            assert [summary(c) for c in messaging.of(g.name)] == expected
        for g in groups:
            await wait_until_relayed(fresh_group_settings, g.name.removeprefix("groups/"))
        # Every call that reached the double since it came back was accepted (the flaky
        # refusals never reach it), and no change was accepted twice.
        accepted = [c.change_id for c in messaging.calls[flip:]]
        assert len(accepted) == len(set(accepted)) == len(groups) * len(expected)
