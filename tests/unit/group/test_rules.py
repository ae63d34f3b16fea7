"""The stateless group rules: the permission matrix, succession and invite validity."""

from __future__ import annotations

import pytest

from services.group import rules
from services.group.store import InviteRow, MemberRow, Role

OW, A, M = Role.OWNER, Role.ADMIN, Role.MEMBER


@pytest.mark.parametrize(("actor", "target", "is_self", "expected"), [
    (OW, M, False, None),
    (OW, A, False, None),
    (A, M, False, None),
    (A, A, False, "OWNER_MANAGES_ADMINS"),
    (A, OW, False, "CANNOT_REMOVE_OWNER"),
    (OW, OW, True, "USE_LEAVE_GROUP"),
    (A, A, True, "USE_LEAVE_GROUP"),
    (M, M, False, "ADMIN_REQUIRED"),
    (M, M, True, "ADMIN_REQUIRED"),
    (M, A, False, "ADMIN_REQUIRED"),
    (M, OW, False, "ADMIN_REQUIRED"),
])
def test_who_may_remove_whom(actor, target, is_self, expected):
    assert rules.removal_refusal(actor, target, is_self) == expected


@pytest.mark.parametrize(("actor", "target", "new", "is_self", "expected"), [
    (OW, M, A, False, None),
    (OW, A, M, False, None),
    (OW, M, OW, False, None),  # transfer
    (OW, OW, OW, True, None),  # no-op
    (OW, OW, A, True, "OWNER_MUST_TRANSFER"),
    (OW, OW, M, True, "OWNER_MUST_TRANSFER"),
    (A, M, A, False, "OWNER_REQUIRED"),
    (A, A, M, True, "OWNER_REQUIRED"),
    (A, M, OW, False, "OWNER_REQUIRED"),
    (M, M, A, True, "OWNER_REQUIRED"),
])
def test_only_the_owner_changes_roles(actor, target, new, is_self, expected):
    assert rules.role_change_refusal(actor, target, new, is_self) == expected


def test_admin_rank():
    assert rules.is_admin(OW) and rules.is_admin(A) and not rules.is_admin(M)


def member(user: str, role: Role, seq: int) -> MemberRow:
    return MemberRow("g", user, role, 1000.0 + seq, seq=seq)


def test_successor_is_the_requested_member():
    ms = [member("owner", OW, 1), member("a", A, 2), member("m", M, 3)]
    assert rules.choose_successor(ms, "owner", "m").user_id == "m"


@pytest.mark.parametrize("requested", ["stranger", "owner", ""])
def test_a_requested_successor_who_is_not_another_member_falls_back(requested):
    ms = [member("owner", OW, 1), member("m", M, 2), member("a", A, 3)]
    assert rules.choose_successor(ms, "owner", requested).user_id == "a"


def test_successor_is_the_longest_standing_admin_before_any_member():
    ms = [member("owner", OW, 1), member("m1", M, 2), member("a2", A, 5), member("a1", A, 4),
          member("m2", M, 3)]
    assert rules.choose_successor(ms, "owner").user_id == "a1"


def test_successor_without_admins_is_the_longest_standing_member():
    ms = [member("m2", M, 7), member("owner", OW, 1), member("m1", M, 3)]
    assert rules.choose_successor(ms, "owner").user_id == "m1"


def test_no_successor_when_alone():
    assert rules.choose_successor([member("owner", OW, 1)], "owner") is None


def invite(**kw) -> InviteRow:
    base = dict(id="i", group_id="g", token_hash=b"h", creator_id="c", create_time=0.0,
                expire_time=100.0, max_uses=0)
    return InviteRow(**{**base, **kw})


@pytest.mark.parametrize(("kw", "now", "expected"), [
    ({}, 50.0, None),
    ({}, 100.0, "INVITE_EXPIRED"),  # expire_time is exclusive
    ({}, 150.0, "INVITE_EXPIRED"),
    ({"max_uses": 3, "use_count": 2}, 50.0, None),
    ({"max_uses": 3, "use_count": 3}, 50.0, "INVITE_USED_UP"),
    ({"max_uses": 0, "use_count": 10_000}, 50.0, None),  # 0 = unlimited
    ({"max_uses": 1, "use_count": 1}, 150.0, "INVITE_EXPIRED"),
])
def test_invite_validity(kw, now, expected):
    inv = invite(**kw)
    assert rules.invite_refusal(inv, now) == expected
    assert inv.usable(now) is (expected is None)


def test_token_hash_and_etag_are_stable_and_distinct():
    assert rules.token_hash("a" * 32) == rules.token_hash("a" * 32)
    assert rules.token_hash("a" * 32) != rules.token_hash("b" * 32)
    assert len(rules.token_hash("x")) == 32
    assert rules.etag("g", 1) == rules.etag("g", 1)
    assert len({rules.etag("g", 1), rules.etag("g", 2), rules.etag("h", 1)}) == 3
