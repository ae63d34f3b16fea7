"""What presence puts on the shared PubSub: channel names and payloads (docs/presence.md).

Payloads are the contract's own messages, serialised: `zynk.presence.v1.Presence` on
`presence:user:{user}` and `zynk.presence.v1.TypingIndicator` on
`presence:typing:{conversation}`. Presence payloads carry full-precision times (this is an
internal channel; watchers order reports by update_time and the edge truncates to minutes)."""

from __future__ import annotations

import dataclasses

from services.presence import names
from services.presence.store import UserPresence
from services.runtime.pbtime import timestamp
from zynk.presence.v1 import presence_pb2

USER_CHANNEL = "presence:user:"
TYPING_CHANNEL = "presence:typing:"


@dataclasses.dataclass(frozen=True, slots=True)
class Typing:
    conversation_id: str
    user_id: str
    typing: bool
    expire_at: float | None  # set while typing


def user_channel(user_id: str) -> str:
    return USER_CHANNEL + user_id


def typing_channel(conversation_id: str) -> str:
    return TYPING_CHANNEL + conversation_id


def _secs(msg, field: str) -> float | None:
    return getattr(msg, field).ToNanoseconds() / 1e9 if msg.HasField(field) else None


def encode_presence(p: UserPresence) -> bytes:
    state = presence_pb2.PRESENCE_STATE_ONLINE if p.online else presence_pb2.PRESENCE_STATE_OFFLINE
    return presence_pb2.Presence(
        name=names.presence_name(p.user_id), state=state,
        last_seen_time=timestamp(p.last_seen), update_time=timestamp(p.since)).SerializeToString()


def decode_presence(data: bytes) -> UserPresence | None:
    """None for a payload that is not a well-formed presence report (ignored by watchers)."""
    try:
        msg = presence_pb2.Presence.FromString(data)
        user_id = names.parse_presence(msg.name, "name")
    except Exception:
        return None
    return UserPresence(user_id, msg.state == presence_pb2.PRESENCE_STATE_ONLINE,
                        _secs(msg, "update_time"), _secs(msg, "last_seen_time"))


def encode_typing(t: Typing) -> bytes:
    return presence_pb2.TypingIndicator(
        conversation=names.conversation_name(t.conversation_id), user=names.user_name(t.user_id),
        typing=t.typing, expire_time=timestamp(t.expire_at)).SerializeToString()


def decode_typing(data: bytes) -> Typing | None:
    try:
        msg = presence_pb2.TypingIndicator.FromString(data)
        conversation_id = names.parse_conversation(msg.conversation, "conversation")
    except Exception:
        return None
    user_id = names.parse_user(msg.user)
    if user_id is None:
        return None
    expire_at = _secs(msg, "expire_time")
    return Typing(conversation_id, user_id, msg.typing and expire_at is not None, expire_at)
