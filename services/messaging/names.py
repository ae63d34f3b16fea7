"""Resource names of the messaging API, on the runtime's templates. `users/me` is kept as
`me`; the domain resolves it to the caller."""

from __future__ import annotations

from services.runtime.names import (
    CONVERSATION,
    DEVICE,
    GROUP,
    ME,
    MESSAGE,
    RECEIPT,
    USER,
)

__all__ = ["ME", "parse_conversation", "parse_message", "parse_user", "parse_device",
           "parse_group", "conversation_name", "message_name", "receipt_name", "user_name",
           "device_name", "group_name"]


def parse_conversation(name: str, field: str) -> str:
    return CONVERSATION.parse_id(name, field)


def parse_message(name: str, field: str) -> tuple[str, str]:
    conversation, message = MESSAGE.parse(name, field)
    return conversation, message.lower()  # message ids are UUIDs: one spelling


def parse_user(name: str, field: str) -> str:
    return USER.parse_id(name, field)


def parse_device(name: str, field: str) -> tuple[str, str]:
    user, device = DEVICE.parse(name, field)
    return user, device


def parse_group(name: str, field: str) -> str:
    return GROUP.parse_id(name, field)


conversation_name = CONVERSATION.format
message_name = MESSAGE.format
receipt_name = RECEIPT.format
user_name = USER.format
device_name = DEVICE.format
group_name = GROUP.format
