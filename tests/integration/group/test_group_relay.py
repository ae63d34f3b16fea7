"""The relay of membership changes to MessagingService.ApplyGroupMembershipChange, over real
gRPC: the group service built by its app.py, and a recording MessagingService server.

That server (harness.MessagingDouble) is a test double of a *neighbouring* service, used to
check the relay's protocol: what each change carries, that one group's changes arrive in
commit order, that the relay retries while messaging is down or refusing, that a retry
carries the same change_id, and that changes committed before a restart are relayed after it.
It sits behind the runtime's real server interceptor, so the internal credential and the
contract's validation rules are enforced as the real messaging service enforces them. The
real messaging service is wired in by the lead's end-to-end tests."""

from __future__ import annotations

import asyncio
import time
import uuid

from services.group.app import open_store
from services.runtime.config import Settings
from tests.integration.group.harness import signups, start_group, start_messaging
from zynk.group.v1 import group_pb2 as pb

OWNER, ADMIN, MEMBER = pb.ROLE_OWNER, pb.ROLE_ADMIN, pb.ROLE_MEMBER


def summary(change) -> tuple:
    return (change.actor, tuple(change.added_users), tuple(change.removed_users),
            tuple(change.admins), change.group_deleted)


async def test_every_kind_of_change_reaches_messaging_in_order(auth, group, messaging):
    owner, a, b, c = await signups(auth, 4)
    s = group.stub
    g = (await s.CreateGroup(pb.CreateGroupRequest(group=pb.Group(display_name="g"),
                                                   initial_members=[a.name]),
                             metadata=owner.md)).group
    await s.AddMembers(pb.AddMembersRequest(group=g.name, users=[b.name]), metadata=owner.md)
    await s.UpdateMemberRole(pb.UpdateMemberRoleRequest(name=f"{g.name}/members/{a.id}",
                                                        role=ADMIN), metadata=owner.md)
    inv = (await s.CreateInvite(pb.CreateInviteRequest(parent=g.name, invite=pb.Invite()),
                                metadata=a.md)).invite
    await s.JoinGroup(pb.JoinGroupRequest(invite_token=inv.token), metadata=c.md)
    await s.RemoveMembers(pb.RemoveMembersRequest(group=g.name, users=[b.name]),
                          metadata=a.md)
    await s.LeaveGroup(pb.LeaveGroupRequest(name=g.name), metadata=owner.md)  # -> a
    await s.UpdateMemberRole(pb.UpdateMemberRoleRequest(name=f"{g.name}/members/{c.id}",
                                                        role=OWNER), metadata=a.md)
    await s.DeleteGroup(pb.DeleteGroupRequest(name=g.name), metadata=c.md)
    # Each RPC waited for its change while messaging was healthy: all are there already.
    got = messaging.of(g.name)
    assert [summary(x) for x in got] == [
        (owner.name, (owner.name, a.name), (), (owner.name,), False),
        (owner.name, (b.name,), (), (owner.name,), False),
        (owner.name, (), (), (owner.name, a.name), False),
        (c.name, (c.name,), (), (owner.name, a.name), False),
        (a.name, (), (b.name,), (owner.name, a.name), False),
        (owner.name, (), (owner.name,), (a.name,), False),
        (a.name, (), (), (a.name, c.name), False),
        (c.name, (), (a.name, c.name), (), True),
    ]
    assert len({x.change_id for x in got}) == len(got)
    for x in got:
        uuid.UUID(x.change_id)


async def test_messaging_down_does_not_fail_the_api_and_the_relay_catches_up(
        auth, group, messaging):
    owner, x = await signups(auth, 2)
    messaging.down = True
    before = len(messaging.calls)
    started = time.monotonic()
    g = (await group.stub.CreateGroup(pb.CreateGroupRequest(group=pb.Group(display_name="g")),
                                      metadata=owner.md)).group
    # Membership flips that only make sense in order: add, remove, add, remove.
    for _ in range(2):
        await group.stub.AddMembers(pb.AddMembersRequest(group=g.name, users=[x.name]),
                                    metadata=owner.md)
        await group.stub.RemoveMembers(pb.RemoveMembersRequest(group=g.name, users=[x.name]),
                                       metadata=owner.md)
    assert time.monotonic() - started < 2.0  # nobody waited out a timeout
    # Bounds, not timings: on a loaded 2-core CI machine five relayed changes against
    # PostgreSQL have taken more than the default 5 s.
    await messaging.wait_for(lambda: len(messaging.calls) >= before + 3)
    assert messaging.of(g.name) == []
    messaging.down = False
    await messaging.wait_for(lambda: len(messaging.of(g.name)) == 5)
    got = messaging.of(g.name)
    assert [(tuple(c.added_users), tuple(c.removed_users)) for c in got] == [
        ((owner.name,), ()), ((x.name,), ()), ((), (x.name,)), ((x.name,), ()),
        ((), (x.name,))]


async def test_a_retry_after_a_lost_answer_carries_the_same_change_id(auth, group, messaging):
    (owner,) = await signups(auth, 1)
    messaging.lose_answers = 2
    g = (await group.stub.CreateGroup(pb.CreateGroupRequest(group=pb.Group(display_name="g")),
                                      metadata=owner.md)).group

    def calls():
        return [c for c in messaging.calls if c.group == g.name]

    await messaging.wait_for(lambda: len(calls()) >= 3)
    assert len({c.change_id for c in calls()}) == 1
    assert len(messaging.of(g.name)) == 1  # applied once
    # The third answer got through: the row goes, and nothing is sent again.
    await wait_until_relayed(group.settings, g.name[7:])
    await asyncio.sleep(0.3)  # several backoff periods of the test settings
    assert len(calls()) == 3


async def test_changes_pending_at_a_restart_are_relayed_after_it(auth, fresh_group_settings):
    """Messaging is unreachable (its server stopped) while changes commit; the group service
    stops; a new group service on the same database relays them, in order, with the change
    ids they were committed with."""
    first_messaging = await start_messaging()
    settings = fresh_group_settings
    first = await start_group(settings, auth, first_messaging.address)
    await first_messaging.stop()  # connections are refused from now on
    owner, a, b = await signups(auth, 3)
    g = (await first.stub.CreateGroup(pb.CreateGroupRequest(
        group=pb.Group(display_name="g"), initial_members=[a.name]), metadata=owner.md)).group
    await first.stub.AddMembers(pb.AddMembersRequest(group=g.name, users=[b.name]),
                                metadata=owner.md)
    await first.stub.LeaveGroup(pb.LeaveGroupRequest(name=g.name), metadata=a.md)
    await first.stop()

    store = await open_store(settings)
    pending = [r.change_id for r in await store.pending_changes(g.name[7:], 100)]
    await store.close()
    assert len(pending) == 3

    second_messaging = await start_messaging()
    second = await start_group(settings, auth, second_messaging.address)
    try:
        double = second_messaging.double
        await double.wait_for(lambda: len(double.of(g.name)) == 3)
        got = double.of(g.name)
        assert [c.change_id for c in got] == pending
        assert [(tuple(c.added_users), tuple(c.removed_users)) for c in got] == [
            ((owner.name, a.name), ()), ((b.name,), ()), ((), (a.name,))]
        # delivered rows are gone: a further restart has nothing to send
        await wait_until_relayed(settings, g.name[7:])
    finally:
        await second.stop()
        await second_messaging.stop()


async def wait_until_relayed(settings: Settings, group_id: str, timeout: float = 3.0) -> None:
    """Until the group has no pending change left, read through a store of our own, as
    another process would."""
    store = await open_store(settings)
    try:
        deadline = time.monotonic() + timeout
        while await store.pending_changes(group_id, 1):
            assert time.monotonic() < deadline, "accepted changes were not deleted"
            await asyncio.sleep(0.02)
    finally:
        await store.close()
