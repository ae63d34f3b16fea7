"""The group service over real gRPC, built by its app.py with the real runtime, beside the
real auth service: the API's behaviour, its authorisation on every RPC, and its answers to
bad input."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2

from tests.integration.group.harness import signup, signups
from tests.support.grpc_errors import error_details, fails
from zynk.events.v1 import events_pb2
from zynk.group.v1 import group_pb2 as pb

OK = grpc.StatusCode
OWNER, ADMIN, MEMBER = pb.ROLE_OWNER, pb.ROLE_ADMIN, pb.ROLE_MEMBER


async def new_group(group, owner, *members, discoverable=False, name="team") -> pb.Group:
    r = await group.stub.CreateGroup(pb.CreateGroupRequest(
        group=pb.Group(display_name=name, discoverable=discoverable),
        initial_members=[m.name for m in members]), metadata=owner.md)
    return r.group


async def set_role(group, owner, g: pb.Group, user, role) -> pb.Member:
    r = await group.stub.UpdateMemberRole(pb.UpdateMemberRoleRequest(
        name=f"{g.name}/members/{user.id}", role=role), metadata=owner.md)
    return r.member


async def members_of(group, g: pb.Group, caller) -> dict[str, int]:
    r = await group.stub.ListMembers(pb.ListMembersRequest(parent=g.name, page_size=100),
                                     metadata=caller.md)
    return {m.user: m.role for m in r.members}


def future(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int((time.time() + seconds) * 1e9))
    return ts


# -- create, get, list ---------------------------------------------------------------------


async def test_create_and_get(auth, group, messaging):
    owner, a, b = await signups(auth, 3)
    g = await new_group(group, owner, a, b, name="Book club")
    gid = g.name.removeprefix("groups/")
    uuid.UUID(gid)
    assert g.conversation == f"conversations/{gid}"
    assert (g.owner, g.member_count, g.caller_role) == (owner.name, 3, OWNER)
    assert g.etag and g.create_time.seconds > 0 and not g.discoverable
    got = (await group.stub.GetGroup(pb.GetGroupRequest(name=g.name), metadata=a.md)).group
    assert got.caller_role == MEMBER and got.etag == g.etag and got.display_name == "Book club"
    roles = await members_of(group, g, b)
    assert roles == {owner.name: OWNER, a.name: MEMBER, b.name: MEMBER}
    # groups.created went out through the outbox
    deadline = time.monotonic() + 3
    while not any(e.key == gid for e in group.events):
        assert time.monotonic() < deadline, "no groups.created event"
        await asyncio.sleep(0.02)
    (event,) = [e for e in group.events if e.key == gid]
    env = events_pb2.EventEnvelope.FromString(event.payload)
    assert env.topic == "groups.created" and env.metadata.producer == "group"
    c = env.group_created
    assert (c.group, c.creator, c.conversation, c.display_name, c.member_count) == (
        g.name, owner.name, g.conversation, "Book club", 3)


async def test_create_names_the_users_that_do_not_exist(auth, group, messaging):
    owner, known = await signups(auth, 2)
    ghost = f"users/{uuid.uuid4()}"
    e = await fails(group.stub.CreateGroup(pb.CreateGroupRequest(
        group=pb.Group(display_name="x"), initial_members=[known.name, ghost]),
        metadata=owner.md), OK.INVALID_ARGUMENT, "USER_NOT_FOUND")
    assert error_details(e)[1] == [("initial_members[1]", f"{ghost} does not exist")]
    assert ghost in e.details()


async def test_list_my_groups_most_recently_joined_first(auth, group, messaging):
    me, other = await signups(auth, 2)
    mine = [await new_group(group, me, name=f"g{i}") for i in range(3)]
    theirs = await new_group(group, other, me)
    got, token = [], ""
    while True:
        r = await group.stub.ListGroups(pb.ListGroupsRequest(page_size=2, page_token=token),
                                        metadata=me.md)
        got += r.groups
        if not (token := r.next_page_token):
            break
    assert [g.name for g in got] == [theirs.name, *(g.name for g in reversed(mine))]
    assert [g.caller_role for g in got] == [MEMBER, OWNER, OWNER, OWNER]
    await fails(group.stub.ListGroups(pb.ListGroupsRequest(page_token="bogus"),
                                      metadata=me.md), OK.INVALID_ARGUMENT,
                "INVALID_PAGE_TOKEN")


async def test_calls_without_a_token_are_refused(group):
    await fails(group.stub.ListGroups(pb.ListGroupsRequest()), OK.UNAUTHENTICATED)
    await fails(group.stub.JoinGroup(pb.JoinGroupRequest(invite_token="a" * 32),
                                     metadata=(("authorization", "Bearer nope"),)),
                OK.UNAUTHENTICATED)


# -- bad input -----------------------------------------------------------------------------

G = "groups/" + "0" * 8


BAD_REQUESTS = [
    ("CreateGroup", pb.CreateGroupRequest(group=pb.Group(display_name="")), "group"),
    ("CreateGroup", pb.CreateGroupRequest(), "group"),
    ("CreateGroup", pb.CreateGroupRequest(group=pb.Group(display_name="x" * 65)),
     "group.display_name"),
    ("CreateGroup", pb.CreateGroupRequest(group=pb.Group(display_name="x", description="d" * 513)),
     "group.description"),
    ("CreateGroup", pb.CreateGroupRequest(group=pb.Group(display_name="x"),
                                          initial_members=["alice"]), "initial_members[0]"),
    ("CreateGroup", pb.CreateGroupRequest(group=pb.Group(display_name="x"),
                                          initial_members=["users/a", "users/a"]),
     "initial_members"),
    ("CreateGroup", pb.CreateGroupRequest(group=pb.Group(display_name="x"),
                                          initial_members=[f"users/u{i}" for i in range(101)]),
     "initial_members"),
    ("GetGroup", pb.GetGroupRequest(name="groups/../x"), "name"),
    ("ListGroups", pb.ListGroupsRequest(page_size=101), "page_size"),
    ("UpdateGroup", pb.UpdateGroupRequest(
        group=pb.Group(name=G, display_name="x"),
        update_mask=field_mask_pb2.FieldMask(paths=["owner"])), "update_mask"),
    ("UpdateGroup", pb.UpdateGroupRequest(group=pb.Group(name="nope", display_name="x")),
     "(message)"),
    ("UpdateGroup", pb.UpdateGroupRequest(group=pb.Group(name=G, description="only")),
     "(message)"),
    ("DeleteGroup", pb.DeleteGroupRequest(name="users/x"), "name"),
    ("ListMembers", pb.ListMembersRequest(parent=G, page_size=-1), "page_size"),
    ("AddMembers", pb.AddMembersRequest(group=G), "users"),
    ("AddMembers", pb.AddMembersRequest(group=G, users=["users/a b"]), "users[0]"),
    ("RemoveMembers", pb.RemoveMembersRequest(group=G, users=[f"users/u{i}" for i in range(101)]),
     "users"),
    ("UpdateMemberRole", pb.UpdateMemberRoleRequest(name=f"{G}/members/x"), "role"),
    ("UpdateMemberRole", pb.UpdateMemberRoleRequest(name=f"{G}/members/x", role=7), "role"),
    ("UpdateMemberRole", pb.UpdateMemberRoleRequest(name=G, role=ADMIN), "name"),
    ("LeaveGroup", pb.LeaveGroupRequest(name=G, successor="bob"), "successor"),
    ("CreateInvite", pb.CreateInviteRequest(parent=G), "invite"),
    ("CreateInvite", pb.CreateInviteRequest(parent=G, invite=pb.Invite(max_uses=10_001)),
     "invite.max_uses"),
    ("CreateInvite", pb.CreateInviteRequest(parent=G, invite=pb.Invite(
        expire_time=timestamp_pb2.Timestamp(seconds=int(time.time()) - 10))),
     "invite.expire_time"),
    ("CreateInvite", pb.CreateInviteRequest(parent=G, invite=pb.Invite(
        expire_time=timestamp_pb2.Timestamp(seconds=int(time.time()) + 31 * 86400))),
     "invite.expire_time"),
    ("DeleteInvite", pb.DeleteInviteRequest(name=f"{G}/members/x"), "name"),
    ("JoinGroup", pb.JoinGroupRequest(invite_token="short"), "invite_token"),
    ("JoinGroup", pb.JoinGroupRequest(invite_token="a" * 20 + "/+=" + "b" * 10), "invite_token"),
]


@pytest.mark.parametrize(("method", "request_", "field"), BAD_REQUESTS,
                         ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(BAD_REQUESTS)])
async def test_bad_input_is_invalid_argument_naming_the_field(auth, group, method, request_,
                                                              field):
    user = await signup(auth)
    e = await fails(getattr(group.stub, method)(request_, metadata=user.md),
                    OK.INVALID_ARGUMENT, "VALIDATION_FAILED")
    fields = [f for f, _ in error_details(e)[1]]
    assert field in fields, fields


# -- authorisation -------------------------------------------------------------------------


def every_rpc(g: pb.Group, someone: str):
    """One call of each group-scoped RPC, with otherwise valid arguments."""
    return [
        ("GetGroup", pb.GetGroupRequest(name=g.name)),
        ("UpdateGroup", pb.UpdateGroupRequest(group=pb.Group(name=g.name, display_name="h"),
                                              update_mask=field_mask_pb2.FieldMask(
                                                  paths=["display_name"]))),
        ("DeleteGroup", pb.DeleteGroupRequest(name=g.name)),
        ("ListMembers", pb.ListMembersRequest(parent=g.name)),
        ("AddMembers", pb.AddMembersRequest(group=g.name, users=[someone])),
        ("RemoveMembers", pb.RemoveMembersRequest(group=g.name, users=[someone])),
        ("UpdateMemberRole", pb.UpdateMemberRoleRequest(
            name=f"{g.name}/members/{someone.removeprefix('users/')}", role=ADMIN)),
        ("LeaveGroup", pb.LeaveGroupRequest(name=g.name)),
        ("CreateInvite", pb.CreateInviteRequest(parent=g.name, invite=pb.Invite())),
        ("ListInvites", pb.ListInvitesRequest(parent=g.name)),
        ("DeleteInvite", pb.DeleteInviteRequest(name=f"{g.name}/invites/{uuid.uuid4()}")),
    ]


async def test_non_members_get_not_found_for_private_groups_everywhere(auth, group, messaging):
    owner, m, stranger = await signups(auth, 3)
    g = await new_group(group, owner, m)
    missing = pb.Group(name=f"groups/{uuid.uuid4()}")
    for target in (g, missing):  # indistinguishable from a group that does not exist
        for method, req in every_rpc(target, m.name):
            await fails(getattr(group.stub, method)(req, metadata=stranger.md), OK.NOT_FOUND,
                        "GROUP_NOT_FOUND")
    assert (await members_of(group, g, owner)) == {owner.name: OWNER, m.name: MEMBER}


async def test_non_members_get_permission_denied_for_discoverable_groups(auth, group,
                                                                         messaging):
    owner, m, stranger = await signups(auth, 3)
    g = await new_group(group, owner, m, discoverable=True)
    for method, req in every_rpc(g, m.name):
        await fails(getattr(group.stub, method)(req, metadata=stranger.md),
                    OK.PERMISSION_DENIED, "NOT_A_MEMBER")


async def test_members_without_the_role_are_refused(auth, group, messaging):
    owner, admin, m, other = await signups(auth, 4)
    g = await new_group(group, owner, admin, m, other)
    await set_role(group, owner, g, admin, ADMIN)
    invite = (await group.stub.CreateInvite(pb.CreateInviteRequest(
        parent=g.name, invite=pb.Invite()), metadata=admin.md)).invite
    member_refused = [(meth, req) for meth, req in every_rpc(g, other.name)
                      if meth not in ("GetGroup", "ListMembers", "LeaveGroup")]
    member_refused.append(("DeleteInvite", pb.DeleteInviteRequest(name=invite.name)))
    for method, req in member_refused:
        reason = ("OWNER_REQUIRED" if method in ("DeleteGroup", "UpdateMemberRole")
                  else "ADMIN_REQUIRED")
        await fails(getattr(group.stub, method)(req, metadata=m.md), OK.PERMISSION_DENIED,
                    reason)
    # admins: not the owner's powers
    await fails(group.stub.DeleteGroup(pb.DeleteGroupRequest(name=g.name), metadata=admin.md),
                OK.PERMISSION_DENIED, "OWNER_REQUIRED")
    await fails(group.stub.UpdateMemberRole(pb.UpdateMemberRoleRequest(
        name=f"{g.name}/members/{m.id}", role=ADMIN), metadata=admin.md),
        OK.PERMISSION_DENIED, "OWNER_REQUIRED")
    await fails(group.stub.RemoveMembers(pb.RemoveMembersRequest(
        group=g.name, users=[owner.name]), metadata=admin.md),
        OK.PERMISSION_DENIED, "CANNOT_REMOVE_OWNER")
    await set_role(group, owner, g, other, ADMIN)
    await fails(group.stub.RemoveMembers(pb.RemoveMembersRequest(
        group=g.name, users=[other.name, m.name]), metadata=admin.md),
        OK.PERMISSION_DENIED, "OWNER_MANAGES_ADMINS")
    await fails(group.stub.RemoveMembers(pb.RemoveMembersRequest(
        group=g.name, users=[owner.name]), metadata=owner.md),
        OK.PERMISSION_DENIED, "USE_LEAVE_GROUP")
    await fails(group.stub.UpdateMemberRole(pb.UpdateMemberRoleRequest(
        name=f"{g.name}/members/{owner.id}", role=ADMIN), metadata=owner.md),
        OK.FAILED_PRECONDITION, "OWNER_MUST_TRANSFER")
    # nothing changed through any of it
    assert await members_of(group, g, m) == {owner.name: OWNER, admin.name: ADMIN,
                                             m.name: MEMBER, other.name: ADMIN}
    # what they may do, they can
    r = await group.stub.RemoveMembers(pb.RemoveMembersRequest(group=g.name, users=[m.name]),
                                       metadata=admin.md)
    assert r.removed_count == 1
    r = await group.stub.RemoveMembers(pb.RemoveMembersRequest(group=g.name,
                                                               users=[other.name]),
                                       metadata=owner.md)
    assert r.removed_count == 1


# -- members, roles, succession ------------------------------------------------------------


async def test_add_and_remove_members(auth, group, messaging):
    owner, a, b = await signups(auth, 3)
    g = await new_group(group, owner)
    r = await group.stub.AddMembers(pb.AddMembersRequest(group=g.name, users=[a.name, b.name,
                                                                              owner.name]),
                                    metadata=owner.md)
    assert [m.user for m in r.members] == [a.name, b.name]
    assert all(m.added_by == owner.name and m.role == MEMBER for m in r.members)
    assert r.members[0].name == f"{g.name}/members/{a.id}"
    again = await group.stub.AddMembers(pb.AddMembersRequest(group=g.name, users=[a.name]),
                                        metadata=owner.md)
    assert list(again.members) == []
    ghost = f"users/{uuid.uuid4()}"
    e = await fails(group.stub.AddMembers(pb.AddMembersRequest(group=g.name,
                                                               users=[ghost]),
                                          metadata=owner.md), OK.INVALID_ARGUMENT,
                    "USER_NOT_FOUND")
    assert error_details(e)[1] == [("users[0]", f"{ghost} does not exist")]
    page = await group.stub.ListMembers(pb.ListMembersRequest(parent=g.name, page_size=2),
                                        metadata=b.md)
    rest = await group.stub.ListMembers(pb.ListMembersRequest(
        parent=g.name, page_size=2, page_token=page.next_page_token), metadata=b.md)
    assert [m.user for m in [*page.members, *rest.members]] == [owner.name, a.name, b.name]
    assert rest.next_page_token == ""
    r = await group.stub.RemoveMembers(pb.RemoveMembersRequest(
        group=g.name, users=[a.name, f"users/{uuid.uuid4()}"]), metadata=owner.md)
    assert r.removed_count == 1
    await fails(group.stub.GetGroup(pb.GetGroupRequest(name=g.name), metadata=a.md),
                OK.NOT_FOUND)


async def test_removed_and_demoted_members_are_refused_at_once_with_a_warm_cache(
        auth, group, messaging):
    """The membership cache (services/group/membership.py) was filled by the very callers
    who then lose their place: the next call of each is refused, reads and writes alike."""
    owner, admin, m = await signups(auth, 3)
    g = await new_group(group, owner, admin, m)
    await set_role(group, owner, g, admin, ADMIN)
    for p in (owner, admin, m):  # warm: every caller has read the group and its members
        await group.stub.GetGroup(pb.GetGroupRequest(name=g.name), metadata=p.md)
        await members_of(group, g, p)
    await group.stub.ListInvites(pb.ListInvitesRequest(parent=g.name), metadata=admin.md)
    await group.stub.RemoveMembers(pb.RemoveMembersRequest(group=g.name, users=[m.name]),
                                   metadata=owner.md)
    await set_role(group, owner, g, admin, MEMBER)
    for method, req in every_rpc(g, owner.name):
        await fails(getattr(group.stub, method)(req, metadata=m.md), OK.NOT_FOUND,
                    "GROUP_NOT_FOUND")
    await fails(group.stub.ListInvites(pb.ListInvitesRequest(parent=g.name),
                                       metadata=admin.md), OK.PERMISSION_DENIED,
                "ADMIN_REQUIRED")
    await fails(group.stub.AddMembers(pb.AddMembersRequest(group=g.name, users=[m.name]),
                                      metadata=admin.md), OK.PERMISSION_DENIED,
                "ADMIN_REQUIRED")
    got = (await group.stub.GetGroup(pb.GetGroupRequest(name=g.name), metadata=admin.md)).group
    assert (got.member_count, got.caller_role) == (2, MEMBER)
    assert await members_of(group, g, owner) == {owner.name: OWNER, admin.name: MEMBER}


async def test_the_member_limit(auth, group, messaging):
    owner, *others = await signups(auth, 9)  # the module's limit is 8 members
    g = await new_group(group, owner, *others[:6])
    await fails(group.stub.AddMembers(pb.AddMembersRequest(
        group=g.name, users=[others[6].name, others[7].name]), metadata=owner.md),
        OK.FAILED_PRECONDITION, "GROUP_FULL")
    await group.stub.AddMembers(pb.AddMembersRequest(group=g.name, users=[others[6].name]),
                                metadata=owner.md)
    await fails(group.stub.CreateGroup(pb.CreateGroupRequest(
        group=pb.Group(display_name="big"), initial_members=[o.name for o in others]),
        metadata=owner.md), OK.FAILED_PRECONDITION, "GROUP_FULL")


async def test_ownership_transfer(auth, group, messaging):
    owner, m = await signups(auth, 2)
    g = await new_group(group, owner, m)
    member = await set_role(group, owner, g, m, OWNER)
    assert member.role == OWNER and member.user == m.name
    got = (await group.stub.GetGroup(pb.GetGroupRequest(name=g.name), metadata=owner.md)).group
    assert got.owner == m.name and got.caller_role == ADMIN and got.etag != g.etag
    await fails(group.stub.DeleteGroup(pb.DeleteGroupRequest(name=g.name), metadata=owner.md),
                OK.PERMISSION_DENIED, "OWNER_REQUIRED")


async def test_succession_when_the_owner_leaves(auth, group, messaging):
    owner, m1, a1, a2, m2 = await signups(auth, 5)
    g = await new_group(group, owner, m1, a1, a2, m2)
    await set_role(group, owner, g, a2, ADMIN)
    await set_role(group, owner, g, a1, ADMIN)
    # a1 joined before a2 (the order of initial_members), whatever the promotion order
    r = await group.stub.LeaveGroup(pb.LeaveGroupRequest(name=g.name), metadata=owner.md)
    assert (r.new_owner, r.group_deleted) == (a1.name, False)
    # an explicit successor wins over seniority
    r = await group.stub.LeaveGroup(pb.LeaveGroupRequest(name=g.name, successor=m2.name),
                                    metadata=a1.md)
    assert r.new_owner == m2.name
    # without admins left, the longest-standing member inherits; a named successor who is
    # no longer a member does not change that (the answer says who inherited)
    await group.stub.RemoveMembers(pb.RemoveMembersRequest(group=g.name, users=[a2.name]),
                                   metadata=m2.md)
    r = await group.stub.LeaveGroup(pb.LeaveGroupRequest(name=g.name, successor=owner.name),
                                    metadata=m2.md)
    assert r.new_owner == m1.name
    assert await members_of(group, g, m1) == {m1.name: OWNER}
    r = await group.stub.LeaveGroup(pb.LeaveGroupRequest(name=g.name), metadata=m1.md)
    assert (r.new_owner, r.group_deleted) == ("", True)
    await fails(group.stub.GetGroup(pb.GetGroupRequest(name=g.name), metadata=m1.md),
                OK.NOT_FOUND, "GROUP_NOT_FOUND")


async def test_update_and_delete_with_etags(auth, group, messaging):
    owner, admin = await signups(auth, 2)
    g = await new_group(group, owner, admin)
    await set_role(group, owner, g, admin, ADMIN)
    g = (await group.stub.GetGroup(pb.GetGroupRequest(name=g.name), metadata=owner.md)).group
    upd = await group.stub.UpdateGroup(pb.UpdateGroupRequest(
        group=pb.Group(name=g.name, description="about us", etag=g.etag),
        update_mask=field_mask_pb2.FieldMask(paths=["description"])), metadata=admin.md)
    assert upd.group.description == "about us" and upd.group.display_name == g.display_name
    assert upd.group.etag != g.etag
    await fails(group.stub.UpdateGroup(pb.UpdateGroupRequest(
        group=pb.Group(name=g.name, display_name="late", etag=g.etag),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"])), metadata=admin.md),
        OK.ABORTED, "ETAG_MISMATCH")
    await fails(group.stub.DeleteGroup(pb.DeleteGroupRequest(name=g.name, etag=g.etag),
                                       metadata=owner.md), OK.ABORTED, "ETAG_MISMATCH")
    await group.stub.DeleteGroup(pb.DeleteGroupRequest(name=g.name, etag=upd.group.etag),
                                 metadata=owner.md)
    await fails(group.stub.GetGroup(pb.GetGroupRequest(name=g.name), metadata=admin.md),
                OK.NOT_FOUND)


# -- invites -------------------------------------------------------------------------------


async def create_invite(group, caller, g, **kw) -> pb.Invite:
    r = await group.stub.CreateInvite(pb.CreateInviteRequest(parent=g.name,
                                                             invite=pb.Invite(**kw)),
                                      metadata=caller.md)
    return r.invite


async def join(group, user, token: str) -> pb.JoinGroupResponse:
    return await group.stub.JoinGroup(pb.JoinGroupRequest(invite_token=token),
                                      metadata=user.md)


async def test_invite_lifecycle(auth, group, messaging):
    owner, joiner, late = await signups(auth, 3)
    g = await new_group(group, owner)
    inv = await create_invite(group, owner, g, max_uses=5)
    assert len(inv.token) >= 22 and inv.creator == owner.name and inv.use_count == 0
    days = (inv.expire_time.seconds - time.time()) / 86400
    assert 6.99 < days <= 7.0
    r = await join(group, joiner, inv.token)
    assert r.group.name == g.name and r.group.caller_role == MEMBER
    assert (r.member.user, r.member.invite, r.member.added_by) == (joiner.name, inv.name, "")
    again = await join(group, joiner, inv.token)  # idempotent
    assert again.member == r.member
    (listed,) = (await group.stub.ListInvites(pb.ListInvitesRequest(parent=g.name),
                                              metadata=owner.md)).invites
    assert listed.name == inv.name and listed.use_count == 1 and listed.token == ""
    await group.stub.DeleteInvite(pb.DeleteInviteRequest(name=inv.name), metadata=owner.md)
    e = await fails(join(group, late, inv.token), OK.NOT_FOUND, "INVITE_NOT_FOUND")
    assert "revoked" in e.details()
    await fails(group.stub.DeleteInvite(pb.DeleteInviteRequest(name=inv.name),
                                        metadata=owner.md), OK.NOT_FOUND, "INVITE_NOT_FOUND")
    assert (await group.stub.ListInvites(pb.ListInvitesRequest(parent=g.name),
                                         metadata=owner.md)).invites == []


async def test_expired_and_used_up_invites(auth, group, messaging):
    owner, a, b = await signups(auth, 3)
    g = await new_group(group, owner)
    once = await create_invite(group, owner, g, max_uses=1)
    brief = await create_invite(group, owner, g, expire_time=future(1.0))
    await join(group, a, once.token)
    e = await fails(join(group, b, once.token), OK.NOT_FOUND, "INVITE_USED_UP")
    assert "used" in e.details()
    await asyncio.sleep(1.05)
    e = await fails(join(group, b, brief.token), OK.NOT_FOUND, "INVITE_EXPIRED")
    assert "expired" in e.details()
    await fails(join(group, b, "Z" * 32), OK.NOT_FOUND, "INVITE_NOT_FOUND")


async def test_concurrent_joins_never_exceed_max_uses(auth, group, messaging):
    owner, *joiners = await signups(auth, 7)
    g = await new_group(group, owner)
    inv = await create_invite(group, owner, g, max_uses=3)
    results = await asyncio.gather(*(join(group, u, inv.token) for u in joiners),
                                   return_exceptions=True)
    ok = [r for r in results if isinstance(r, pb.JoinGroupResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(ok) == 3 and len(refused) == 3
    assert all(error_details(r)[0] == "INVITE_USED_UP" for r in refused)
    got = (await group.stub.GetGroup(pb.GetGroupRequest(name=g.name), metadata=owner.md)).group
    assert got.member_count == 4


async def test_concurrent_joins_stop_at_the_member_limit(auth, group, messaging):
    owner, *joiners = await signups(auth, 11)  # the module's limit is 8 members
    g = await new_group(group, owner)
    inv = await create_invite(group, owner, g)
    results = await asyncio.gather(*(join(group, u, inv.token) for u in joiners),
                                   return_exceptions=True)
    ok = [r for r in results if isinstance(r, pb.JoinGroupResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(ok) == 7 and len(refused) == 3
    assert {(r.code(), error_details(r)[0]) for r in refused} == {
        (OK.FAILED_PRECONDITION, "GROUP_FULL")}
    listed = (await group.stub.ListInvites(pb.ListInvitesRequest(parent=g.name),
                                           metadata=owner.md)).invites
    assert listed[0].use_count == 7
