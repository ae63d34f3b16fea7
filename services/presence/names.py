"""Resource names the presence API uses: parsing and formatting only. `me` is kept as given;
the domain resolves it to the caller."""

from __future__ import annotations

import re

from services.runtime.errors import InvalidArgument

ME = "me"
_SEG = r"([A-Za-z0-9-]{1,64})"
_PRESENCE = re.compile(rf"^users/{_SEG}/presence$")
_USER = re.compile(rf"^users/{_SEG}$")
_CONVERSATION = re.compile(rf"^conversations/{_SEG}$")


def _bad(field: str, value: str, pattern: str) -> InvalidArgument:
    return InvalidArgument(f"{field} must look like {pattern}, got {value!r}",
                           field_violations=[(field, f"must look like {pattern}")],
                           reason="INVALID_NAME")


def parse_presence(name: str, field: str) -> str:
    m = _PRESENCE.match(name)
    if not m:
        raise _bad(field, name, "users/{user}/presence")
    return m.group(1)


def parse_conversation(name: str, field: str) -> str:
    m = _CONVERSATION.match(name)
    if not m:
        raise _bad(field, name, "conversations/{conversation}")
    return m.group(1)


def parse_user(name: str) -> str | None:
    m = _USER.match(name)
    return m.group(1) if m else None


def presence_name(user_id: str) -> str:
    return f"users/{user_id}/presence"


def user_name(user_id: str) -> str:
    return f"users/{user_id}"


def conversation_name(conversation_id: str) -> str:
    return f"conversations/{conversation_id}"
