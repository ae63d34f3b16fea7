"""The group domain's rules over the SQLite store: permissions on every operation,
succession, invites, limits, and the pending relay rows each change writes."""

from __future__ import annotations

import uuid

import pytest

from services.group import rules
from services.group.domain import INVITE_DEFAULT_TTL_S, GroupDomain
from services.group.store import Role
from services.runtime.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)

U = "users/"


def uname(p) -> str:
    return U + p.user_id


async def group_with(env, *, admins=0, members=0, discoverable=False):
    """A group owned by a new user, with new admins and members (in that join order)."""
    owner = env.user()
    admin_ps = [env.user() for _ in range(admins)]
    member_ps = [env.user() for _ in range(members)]
    view = await env.domain.create_group(owner, "team", "", discoverable,
                                         [p.user_id for p in admin_ps + member_ps])
    for a in admin_ps:
        await env.domain.update_member_role(owner, view.group.id, a.user_id, Role.ADMIN)
    return view.group.id, owner, admin_ps, member_ps


async def raises(exc_type, coro, reason: str | None = None):
    with pytest.raises(exc_type) as e:
        await coro
    if reason is not None:
        assert e.value.reason == reason, (e.value.reason, e.value.message)
    return e.value


# -- create / get / list -------------------------------------------------------------------


async def test_create_makes_the_caller_owner_and_relays_the_full_member_list(env):
    owner, a, b = env.user(), env.user(), env.user()
    view = await env.domain.create_group(owner, "book club", "weekly", True,
                                         [a.user_id, b.user_id, "me"])
    g = view.group
    assert view.caller_role is Role.OWNER and g.owner_id == owner.user_id
    assert g.member_count == 3 and g.discoverable and g.description == "weekly"
    assert env.relay.commits == [g.id]
    (change,) = await env.changes(g.id)
    assert change.group == f"groups/{g.id}" and change.actor == uname(owner)
    uuid.UUID(change.change_id)
    assert list(change.added_users) == [uname(owner), uname(a), uname(b)]
    assert list(change.admins) == [uname(owner)] and not change.removed_users
    assert not change.group_deleted
    rows = await env.store.db.fetchall("SELECT topic, key, type_name FROM outbox")
    assert [tuple(r) for r in rows] == [("groups.created", g.id, "zynk.events.v1.EventEnvelope")]


async def test_create_names_unknown_initial_members(env):
    owner, known = env.user(), env.user()
    e = await raises(InvalidArgument, env.domain.create_group(
        owner, "x", "", False, [known.user_id, "ghost-1", "ghost-2"]), "USER_NOT_FOUND")
    assert e.field_violations == [("initial_members[1]", "users/ghost-1 does not exist"),
                                  ("initial_members[2]", "users/ghost-2 does not exist")]
    assert await env.store.pending_groups(10) == []  # nothing written


async def test_create_respects_the_member_and_owned_group_limits(env):
    env.with_settings(max_members=3, max_owned_groups=2)
    owner = env.user()
    others = [env.user().user_id for _ in range(3)]
    await raises(FailedPrecondition, env.domain.create_group(owner, "x", "", False, others),
                 "GROUP_FULL")
    await env.domain.create_group(owner, "x", "", False, others[:2])
    await env.domain.create_group(owner, "y", "", False, [])
    await raises(ResourceExhausted, env.domain.create_group(owner, "z", "", False, []),
                 "TOO_MANY_GROUPS")


async def test_get_hides_private_groups_from_non_members(env):
    gid, owner, _, (m,) = await group_with(env, members=1)
    stranger = env.user()
    assert (await env.domain.get_group(m, gid)).caller_role is Role.MEMBER
    await raises(NotFound, env.domain.get_group(stranger, gid), "GROUP_NOT_FOUND")
    await raises(NotFound, env.domain.get_group(stranger, str(uuid.uuid4())), "GROUP_NOT_FOUND")
    pub, *_ = await group_with(env, discoverable=True)
    await raises(PermissionDenied, env.domain.get_group(stranger, pub), "NOT_A_MEMBER")


async def test_list_groups_most_recent_first_with_pagination(env):
    me = env.user()
    ids = [(await env.domain.create_group(me, f"g{i}", "", False, [])).group.id
           for i in range(5)]
    other_owner = env.user()
    joined = (await env.domain.create_group(other_owner, "later", "", False,
                                            [me.user_id])).group.id
    got, token = [], ""
    while True:
        page = await env.domain.list_groups(me, 2, token)
        got += page.items
        token = page.next_page_token
        if not token:
            break
    assert [v.group.id for v in got] == [joined, *reversed(ids)]
    assert got[0].member.role is Role.MEMBER and got[1].member.role is Role.OWNER
    assert got[0].group.member_count == 2
    await raises(InvalidArgument, env.domain.list_groups(me, 2, "garbage!"), "INVALID_PAGE_TOKEN")
    # A token of someone else's listing is refused, not reinterpreted.
    page = await env.domain.list_groups(me, 1, "")
    await raises(InvalidArgument, env.domain.list_groups(other_owner, 1, page.next_page_token),
                 "INVALID_PAGE_TOKEN")


# -- update / delete -----------------------------------------------------------------------


async def test_update_by_admins_with_mask_and_etag(env):
    gid, owner, (admin,), (m,) = await group_with(env, admins=1, members=1)
    view = await env.domain.get_group(admin, gid)
    old_etag = rules.etag(gid, view.group.revision)
    vals = {"display_name": "", "description": "new", "discoverable": True}
    updated = await env.domain.update_group(admin, gid, old_etag, vals, ["description"])
    assert updated.group.description == "new" and updated.group.display_name == "team"
    assert not updated.group.discoverable  # not in the mask
    await raises(Aborted, env.domain.update_group(admin, gid, old_etag, vals, ["description"]),
                 "ETAG_MISMATCH")
    await raises(PermissionDenied, env.domain.update_group(m, gid, "", vals, ["description"]),
                 "ADMIN_REQUIRED")
    await raises(InvalidArgument, env.domain.update_group(owner, gid, "", vals, []))
    full = await env.domain.update_group(owner, gid, "", {**vals, "display_name": "renamed"},
                                         [])
    assert (full.group.display_name, full.group.discoverable) == ("renamed", True)
    # discoverable now: a stranger may know it exists, and is refused as a non-member
    await raises(PermissionDenied,
                 env.domain.update_group(env.user(), gid, "", vals, ["description"]),
                 "NOT_A_MEMBER")


async def test_membership_changes_change_the_etag(env):
    gid, owner, _, _ = await group_with(env)
    before = (await env.domain.get_group(owner, gid)).group
    await env.domain.add_members(owner, gid, [env.user().user_id])
    after = (await env.domain.get_group(owner, gid)).group
    assert after.revision > before.revision and after.member_count == 2


async def test_delete_is_for_the_owner_only_and_relays_group_deleted(env):
    gid, owner, (admin,), (m,) = await group_with(env, admins=1, members=1)
    await raises(PermissionDenied, env.domain.delete_group(admin, gid, ""), "OWNER_REQUIRED")
    await raises(PermissionDenied, env.domain.delete_group(m, gid, ""), "OWNER_REQUIRED")
    await raises(Aborted, env.domain.delete_group(owner, gid, "stale"), "ETAG_MISMATCH")
    rev = (await env.domain.get_group(owner, gid)).group.revision
    await env.domain.delete_group(owner, gid, rules.etag(gid, rev))
    await raises(NotFound, env.domain.get_group(owner, gid))
    last = (await env.changes(gid))[-1]
    assert last.group_deleted and not last.admins
    assert sorted(last.removed_users) == sorted([uname(owner), uname(admin), uname(m)])


# -- members -------------------------------------------------------------------------------


async def test_add_members_by_admins_only_ignoring_present_users(env):
    gid, owner, (admin,), (m,) = await group_with(env, admins=1, members=1)
    new1, new2 = env.user(), env.user()
    await raises(PermissionDenied, env.domain.add_members(m, gid, [new1.user_id]),
                 "ADMIN_REQUIRED")
    await raises(NotFound, env.domain.add_members(env.user(), gid, [new1.user_id]))
    e = await raises(InvalidArgument,
                     env.domain.add_members(admin, gid, [new1.user_id, "nobody"]),
                     "USER_NOT_FOUND")
    assert e.field_violations == [("users[1]", "users/nobody does not exist")]
    added = await env.domain.add_members(admin, gid, [m.user_id, new1.user_id, new2.user_id])
    assert [a.user_id for a in added] == [new1.user_id, new2.user_id]
    assert all(a.role is Role.MEMBER and a.added_by == admin.user_id for a in added)
    assert await env.domain.add_members(admin, gid, [new1.user_id]) == []
    change = (await env.changes(gid))[-1]
    assert list(change.added_users) == [uname(new1), uname(new2)]
    assert change.actor == uname(admin)
    assert list(change.admins) == [uname(owner), uname(admin)]


async def test_add_members_stops_at_the_member_limit(env):
    env.with_settings(max_members=4)
    gid, owner, _, _ = await group_with(env, members=2)
    await raises(FailedPrecondition,
                 env.domain.add_members(owner, gid, [env.user().user_id, env.user().user_id]),
                 "GROUP_FULL")
    assert len(await env.domain.add_members(owner, gid, [env.user().user_id])) == 1


async def test_removal_permissions(env):
    gid, owner, (a1, a2), (m1, m2, m3) = await group_with(env, admins=2, members=3)
    await raises(PermissionDenied, env.domain.remove_members(m1, gid, [m2.user_id]),
                 "ADMIN_REQUIRED")
    await raises(PermissionDenied, env.domain.remove_members(a1, gid, [a2.user_id]),
                 "OWNER_MANAGES_ADMINS")
    await raises(PermissionDenied, env.domain.remove_members(a1, gid, [owner.user_id]),
                 "CANNOT_REMOVE_OWNER")
    await raises(PermissionDenied, env.domain.remove_members(owner, gid, [owner.user_id]),
                 "USE_LEAVE_GROUP")
    await raises(PermissionDenied, env.domain.remove_members(a1, gid, ["me"]),
                 "USE_LEAVE_GROUP")
    # A batch with one refused target removes nobody.
    await raises(PermissionDenied, env.domain.remove_members(a1, gid, [m1.user_id, a2.user_id]))
    assert (await env.domain.get_group(owner, gid)).group.member_count == 6
    assert await env.domain.remove_members(a1, gid, [m1.user_id, "not-a-member"]) == 1
    assert await env.domain.remove_members(owner, gid, [a2.user_id, m2.user_id]) == 2
    change = (await env.changes(gid))[-1]
    assert sorted(change.removed_users) == sorted([uname(a2), uname(m2)])
    assert list(change.admins) == [uname(owner), uname(a1)]
    assert await env.domain.remove_members(owner, gid, [m2.user_id]) == 0
    await raises(NotFound, env.domain.get_group(m1, gid))


async def test_role_changes_and_ownership_transfer(env):
    gid, owner, (admin,), (m,) = await group_with(env, admins=1, members=1)
    await raises(PermissionDenied, env.domain.update_member_role(admin, gid, m.user_id,
                                                                 Role.ADMIN), "OWNER_REQUIRED")
    await raises(PermissionDenied, env.domain.update_member_role(m, gid, "me", Role.ADMIN),
                 "OWNER_REQUIRED")
    await raises(FailedPrecondition, env.domain.update_member_role(owner, gid, "me",
                                                                   Role.ADMIN),
                 "OWNER_MUST_TRANSFER")
    await raises(NotFound, env.domain.update_member_role(owner, gid, "stranger", Role.ADMIN),
                 "MEMBER_NOT_FOUND")
    n = len(await env.changes(gid))
    same = await env.domain.update_member_role(owner, gid, m.user_id, Role.MEMBER)
    assert same.role is Role.MEMBER and len(await env.changes(gid)) == n  # no-op: no relay
    promoted = await env.domain.update_member_role(owner, gid, m.user_id, Role.ADMIN)
    assert promoted.role is Role.ADMIN
    change = (await env.changes(gid))[-1]
    assert not change.added_users and not change.removed_users
    assert list(change.admins) == [uname(owner), uname(admin), uname(m)]
    await env.domain.update_member_role(owner, gid, admin.user_id, Role.MEMBER)
    moved = await env.domain.update_member_role(owner, gid, m.user_id, Role.OWNER)
    assert moved.role is Role.OWNER
    assert (await env.domain.get_group(owner, gid)).caller_role is Role.ADMIN
    g = (await env.domain.get_group(m, gid)).group
    assert g.owner_id == m.user_id
    assert list((await env.changes(gid))[-1].admins) == [uname(owner), uname(m)]
    # the old owner is an admin now, and can no longer change roles
    await raises(PermissionDenied, env.domain.update_member_role(owner, gid, admin.user_id,
                                                                 Role.ADMIN))


# -- leaving and succession ----------------------------------------------------------------


async def test_member_leaves(env):
    gid, owner, _, (m,) = await group_with(env, members=1)
    r = await env.domain.leave_group(m, gid, None)
    assert (r.new_owner, r.group_deleted) == ("", False)
    change = (await env.changes(gid))[-1]
    assert list(change.removed_users) == [uname(m)] and change.actor == uname(m)
    await raises(NotFound, env.domain.leave_group(m, gid, None), "GROUP_NOT_FOUND")


async def test_owner_leaving_hands_over_to_the_longest_standing_admin(env):
    gid, owner, (a1, a2), (m,) = await group_with(env, admins=2, members=1)
    r = await env.domain.leave_group(owner, gid, None)
    assert r.new_owner == a1.user_id and not r.group_deleted
    g = (await env.domain.get_group(a1, gid))
    assert g.caller_role is Role.OWNER and g.group.owner_id == a1.user_id
    change = (await env.changes(gid))[-1]
    assert list(change.removed_users) == [uname(owner)]
    assert list(change.admins) == [uname(a1), uname(a2)]


async def test_owner_leaving_without_admins_hands_over_to_the_longest_standing_member(env):
    owner, m1, m2 = env.user(), env.user(), env.user()
    gid = (await env.domain.create_group(owner, "x", "", False, [m1.user_id])).group.id
    await env.domain.add_members(owner, gid, [m2.user_id])
    r = await env.domain.leave_group(owner, gid, None)
    assert r.new_owner == m1.user_id


async def test_owner_leaving_with_a_successor(env):
    gid, owner, (admin,), (m,) = await group_with(env, admins=1, members=1)
    r = await env.domain.leave_group(owner, gid, m.user_id)
    assert r.new_owner == m.user_id
    assert (await env.domain.get_group(m, gid)).caller_role is Role.OWNER
    assert (await env.domain.get_group(admin, gid)).caller_role is Role.ADMIN


@pytest.mark.parametrize("successor", ["stranger", "me", "self"])
async def test_a_successor_who_is_not_another_member_falls_back_to_seniority(env, successor):
    gid, owner, (admin,), (m,) = await group_with(env, admins=1, members=1)
    ref = owner.user_id if successor == "self" else successor
    r = await env.domain.leave_group(owner, gid, ref)
    assert r.new_owner == admin.user_id  # the response says who it went to


async def test_a_successor_is_ignored_when_a_non_owner_leaves(env):
    gid, owner, _, (m,) = await group_with(env, members=1)
    r = await env.domain.leave_group(m, gid, "stranger")
    assert r.new_owner == "" and not r.group_deleted


async def test_the_last_member_leaving_deletes_the_group(env):
    gid, owner, _, (m,) = await group_with(env, members=1)
    await env.domain.leave_group(owner, gid, None)
    r = await env.domain.leave_group(m, gid, None)
    assert (r.new_owner, r.group_deleted) == ("", True)
    await raises(NotFound, env.domain.get_group(m, gid))
    last = (await env.changes(gid))[-1]
    assert last.group_deleted and list(last.removed_users) == [uname(m)]
    assert not last.admins


async def test_every_membership_change_is_recorded_in_commit_order(env):
    gid, owner, (admin,), (m,) = await group_with(env, admins=1, members=1)
    changes = await env.changes(gid)
    # create, then the role change that made `admin` an admin
    assert [bool(c.added_users) for c in changes] == [True, False]
    assert len({c.change_id for c in changes}) == len(changes)
    assert env.relay.commits == [gid, gid]


# -- invites -------------------------------------------------------------------------------


async def test_invites_are_for_admins(env):
    gid, owner, (admin,), (m,) = await group_with(env, admins=1, members=1)
    await raises(PermissionDenied, env.domain.create_invite(m, gid, None, 0), "ADMIN_REQUIRED")
    await raises(PermissionDenied, env.domain.list_invites(m, gid, 0, ""), "ADMIN_REQUIRED")
    await raises(NotFound, env.domain.create_invite(env.user(), gid, None, 0))
    created = await env.domain.create_invite(admin, gid, None, 0)
    assert created.invite.expire_time == env.clock.now + INVITE_DEFAULT_TTL_S
    assert len(created.token) >= 22  # >= 128 bits of base64url
    assert created.invite.token_hash == rules.token_hash(created.token)
    await raises(PermissionDenied, env.domain.delete_invite(m, gid, created.invite.id),
                 "ADMIN_REQUIRED")
    await raises(NotFound, env.domain.delete_invite(owner, gid, str(uuid.uuid4())),
                 "INVITE_NOT_FOUND")


async def test_join_by_invite(env):
    gid, owner, _, _ = await group_with(env)
    created = await env.domain.create_invite(owner, gid, env.clock.now + 3600, 2)
    joiner = env.user()
    r = await env.domain.join_group(joiner, created.token)
    assert r.view.group.id == gid and r.view.caller_role is Role.MEMBER
    assert r.member.invite_id == created.invite.id and r.member.added_by == ""
    assert r.view.group.member_count == 2
    change = (await env.changes(gid))[-1]
    assert list(change.added_users) == [uname(joiner)] and change.actor == uname(joiner)
    # Joining again is an idempotent success that spends no use.
    again = await env.domain.join_group(joiner, created.token)
    assert again.member == r.member
    (listed,) = (await env.domain.list_invites(owner, gid, 0, "")).items
    assert listed.use_count == 1


async def test_used_up_expired_and_revoked_invites(env):
    gid, owner, _, _ = await group_with(env)
    once = await env.domain.create_invite(owner, gid, None, 1)
    first = env.user()
    await env.domain.join_group(first, once.token)
    await raises(NotFound, env.domain.join_group(env.user(), once.token), "INVITE_USED_UP")
    # The member whose join used it up may still "join" again (a retry).
    await env.domain.join_group(first, once.token)

    soon = await env.domain.create_invite(owner, gid, env.clock.now + 60, 0)
    env.clock.advance(61)
    await raises(NotFound, env.domain.join_group(env.user(), soon.token), "INVITE_EXPIRED")

    revoked = await env.domain.create_invite(owner, gid, None, 0)
    await env.domain.delete_invite(owner, gid, revoked.invite.id)
    await raises(NotFound, env.domain.join_group(env.user(), revoked.token), "INVITE_NOT_FOUND")
    await raises(NotFound, env.domain.join_group(env.user(), "x" * 43), "INVITE_NOT_FOUND")
    # Only working invites are listed.
    assert (await env.domain.list_invites(owner, gid, 0, "")).items == []


async def test_invite_expiry_bounds_are_rechecked(env):
    gid, owner, _, _ = await group_with(env)
    for bad in [env.clock.now - 1, env.clock.now + 31 * 24 * 3600]:
        e = await raises(InvalidArgument, env.domain.create_invite(owner, gid, bad, 0))
        assert e.field_violations[0][0] == "invite.expire_time"


async def test_join_stops_at_the_member_limit(env):
    env.with_settings(max_members=2)
    gid, owner, _, _ = await group_with(env)
    created = await env.domain.create_invite(owner, gid, None, 0)
    await env.domain.join_group(env.user(), created.token)
    await raises(FailedPrecondition, env.domain.join_group(env.user(), created.token),
                 "GROUP_FULL")
    (listed,) = (await env.domain.list_invites(owner, gid, 0, "")).items
    assert listed.use_count == 1  # a refused join spends nothing


async def test_working_invites_are_limited_and_old_ones_purged(env):
    env.with_settings(max_active_invites=2)
    gid, owner, _, _ = await group_with(env)
    a = await env.domain.create_invite(owner, gid, env.clock.now + 60, 0)
    await env.domain.create_invite(owner, gid, None, 0)
    await raises(ResourceExhausted, env.domain.create_invite(owner, gid, None, 0),
                 "TOO_MANY_INVITES")
    env.clock.advance(61)  # `a` expired: room for one more
    await env.domain.create_invite(owner, gid, None, 0)
    env.clock.advance(8 * 24 * 3600)  # long past a's expiry: purged on the next create
    await env.domain.create_invite(owner, gid, None, 0)
    async with env.store.transaction() as tx:
        assert await tx.get_invite(gid, a.invite.id) is None


async def test_list_pagination_of_members_and_invites(env):
    gid, owner, _, ms = await group_with(env, members=4)
    got, token = [], ""
    while True:
        page = await env.domain.list_members(ms[0], gid, 2, token)
        got += page.items
        if not (token := page.next_page_token):
            break
    assert [m.user_id for m in got] == [owner.user_id, *(m.user_id for m in ms)]
    # A token from one listing is refused by another, not reinterpreted.
    await raises(InvalidArgument, env.domain.list_invites(owner, gid, 2, page_token_of(gid)),
                 "INVALID_PAGE_TOKEN")
    await raises(NotFound, env.domain.list_members(env.user(), gid, 0, ""))
    invites = [await env.domain.create_invite(owner, gid, None, 0) for _ in range(3)]
    page = await env.domain.list_invites(owner, gid, 2, "")
    rest = await env.domain.list_invites(owner, gid, 2, page.next_page_token)
    assert [i.id for i in page.items + rest.items] == [c.invite.id for c in invites]
    assert rest.next_page_token == ""


def page_token_of(gid: str) -> str:
    """A members-listing token, which an invites listing must refuse."""
    from services.group.domain import _encode_page_token

    return _encode_page_token("members", gid, 1)


def test_domain_has_no_grpc_or_sql():
    import inspect

    import services.group.domain as d

    src = inspect.getsource(d)
    assert "import grpc" not in src and "SELECT " not in src
    assert GroupDomain
