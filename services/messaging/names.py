"""Resource names of the messaging API: parsing and formatting only. `users/me` is kept as
`me`; the domain resolves it to the caller."""

from __future__ import annotations

import re

from services.runtime.errors import InvalidArgument

ME = "me"
_SEG = r"([A-Za-z0-9-]{1,64})"
_CONVERSATION = re.compile(rf"^conversations/{_SEG}$")
_MESSAGE = re.compile(rf"^conversations/{_SEG}/messages/{_SEG}$")
_USER = re.compile(rf"^users/{_SEG}$")
_DEVICE = re.compile(rf"^users/{_SEG}/devices/{_SEG}$")
_GROUP = re.compile(rf"^groups/{_SEG}$")


def _bad(field: str, value: str, pattern: str) -> InvalidArgument:
    return InvalidArgument(f"{field} must look like {pattern}, got {value[:100]!r}",
                           field_violations=[(field, f"must look like {pattern}")],
                           reason="INVALID_NAME")


def parse_conversation(name: str, field: str) -> str:
    m = _CONVERSATION.match(name)
    if not m:
        raise _bad(field, name, "conversations/{conversation}")
    return m.group(1)


def parse_message(name: str, field: str) -> tuple[str, str]:
    m = _MESSAGE.match(name)
    if not m:
        raise _bad(field, name, "conversations/{conversation}/messages/{message}")
    return m.group(1), m.group(2).lower()


def parse_user(name: str, field: str) -> str:
    m = _USER.match(name)
    if not m:
        raise _bad(field, name, "users/{user}")
    return m.group(1)


def parse_device(name: str, field: str) -> tuple[str, str]:
    m = _DEVICE.match(name)
    if not m:
        raise _bad(field, name, "users/{user}/devices/{device}")
    return m.group(1), m.group(2)


def parse_group(name: str, field: str) -> str:
    m = _GROUP.match(name)
    if not m:
        raise _bad(field, name, "groups/{group}")
    return m.group(1)


def conversation_name(conversation_id: str) -> str:
    return f"conversations/{conversation_id}"


def message_name(conversation_id: str, message_id: str) -> str:
    return f"conversations/{conversation_id}/messages/{message_id}"


def receipt_name(conversation_id: str, message_id: str, user_id: str) -> str:
    return f"conversations/{conversation_id}/messages/{message_id}/receipts/{user_id}"


def user_name(user_id: str) -> str:
    return f"users/{user_id}"


def device_name(user_id: str, device_id: str) -> str:
    return f"users/{user_id}/devices/{device_id}"


def group_name(group_id: str) -> str:
    return f"groups/{group_id}"
