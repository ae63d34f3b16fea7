"""Resource names of the group API, on the runtime's templates. `users/me` is kept as given
(`ME`); the domain resolves it to the caller."""

from __future__ import annotations

from services.runtime.names import CONVERSATION, GROUP, INVITE, ME, MEMBER, USER

__all__ = ["ME", "parse_group", "parse_user", "parse_member", "parse_invite", "group_name",
           "user_name", "member_name", "invite_name", "conversation_name"]


def parse_group(name: str, field: str) -> str:
    return GROUP.parse_id(name, field)


def parse_user(name: str, field: str) -> str:
    return USER.parse_id(name, field)


def parse_member(name: str, field: str) -> tuple[str, str]:
    group, user = MEMBER.parse(name, field)
    return group, user


def parse_invite(name: str, field: str) -> tuple[str, str]:
    group, invite = INVITE.parse(name, field)
    return group, invite


group_name = GROUP.format
user_name = USER.format
member_name = MEMBER.format
invite_name = INVITE.format


def conversation_name(group_id: str) -> str:
    """A group's conversation has the group's UUID (messaging creates it on the first
    ApplyGroupMembershipChange), so no lookup is ever needed to name it."""
    return CONVERSATION.format(group_id)
