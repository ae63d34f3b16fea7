"""Resource names the presence API uses, on the runtime's templates. `me` is kept as given;
the domain resolves it to the caller."""

from __future__ import annotations

from services.runtime.names import CONVERSATION, ME, PRESENCE, USER

__all__ = ["ME", "parse_presence", "parse_conversation", "parse_user", "presence_name",
           "user_name", "conversation_name"]


def parse_presence(name: str, field: str) -> str:
    return PRESENCE.parse_id(name, field)


def parse_conversation(name: str, field: str) -> str:
    return CONVERSATION.parse_id(name, field)


def parse_user(name: str) -> str | None:
    """The user id of a `users/{user}` name, or None (messaging's answers are trusted)."""
    ids = USER.match(name)
    return None if ids is None else ids[0]


presence_name = PRESENCE.format
user_name = USER.format
conversation_name = CONVERSATION.format
