"""Resource names of the group API: parsing and formatting only. `users/me` is kept as given
(`ME`); the domain resolves it to the caller. The contract's buf.validate patterns already
ran; parsing here turns a name into ids and still refuses what does not fit."""

from __future__ import annotations

import re

from services.runtime.errors import InvalidArgument

ME = "me"
_SEG = r"([A-Za-z0-9-]{1,64})"
_GROUP = re.compile(rf"^groups/{_SEG}$")
_USER = re.compile(rf"^users/{_SEG}$")
_MEMBER = re.compile(rf"^groups/{_SEG}/members/{_SEG}$")
_INVITE = re.compile(rf"^groups/{_SEG}/invites/{_SEG}$")


def _bad(field: str, value: str, pattern: str) -> InvalidArgument:
    return InvalidArgument(f"{field} must look like {pattern}, got {value!r}",
                           field_violations=[(field, f"must look like {pattern}")],
                           reason="INVALID_NAME")


def parse_group(name: str, field: str) -> str:
    m = _GROUP.match(name)
    if not m:
        raise _bad(field, name, "groups/{group}")
    return m.group(1)


def parse_user(name: str, field: str) -> str:
    m = _USER.match(name)
    if not m:
        raise _bad(field, name, "users/{user}")
    return m.group(1)


def parse_member(name: str, field: str) -> tuple[str, str]:
    m = _MEMBER.match(name)
    if not m:
        raise _bad(field, name, "groups/{group}/members/{user}")
    return m.group(1), m.group(2)


def parse_invite(name: str, field: str) -> tuple[str, str]:
    m = _INVITE.match(name)
    if not m:
        raise _bad(field, name, "groups/{group}/invites/{invite}")
    return m.group(1), m.group(2)


def group_name(group_id: str) -> str:
    return f"groups/{group_id}"


def user_name(user_id: str) -> str:
    return f"users/{user_id}"


def member_name(group_id: str, user_id: str) -> str:
    return f"groups/{group_id}/members/{user_id}"


def invite_name(group_id: str, invite_id: str) -> str:
    return f"groups/{group_id}/invites/{invite_id}"


def conversation_name(group_id: str) -> str:
    """A group's conversation has the group's UUID (messaging creates it on the first
    ApplyGroupMembershipChange), so no lookup is ever needed to name it."""
    return f"conversations/{group_id}"
