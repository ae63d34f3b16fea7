"""Row mapping shared by the SQL adapters (sqlite.py, postgres.py): both select the same
columns in the same order, so one mapping turns a positional row (sqlite3.Row or
asyncpg.Record) into the store's dataclasses."""

from __future__ import annotations

from collections.abc import Sequence

from services.messaging.store import (
    ConversationRow,
    ConversationType,
    EnvelopeRow,
    MessageKind,
    MessageRow,
)

CONV_FIELDS = ("id", "type", "group_id", "direct_key", "message_ttl_s", "create_time",
               "update_time", "last_sequence", "last_activity_time", "closed", "version",
               "settings_version")
MSG_FIELDS = ("id", "conversation_id", "sequence", "kind", "sender_user", "sender_device",
              "create_time", "expire_time", "delete_time", "content_hash",
              "sender_key_ciphertext", "system_event", "envelope_count", "ciphertext_bytes")
ENV_FIELDS = ("user_id", "device_id", "type", "ciphertext", "ciphertext_sha256")
CONV_COLS = ", ".join(CONV_FIELDS)
MSG_COLS = ", ".join(MSG_FIELDS)
N_CONV = len(CONV_FIELDS)
N_MSG = len(MSG_FIELDS)


def cols(alias: str, fields: Sequence[str]) -> str:
    return ", ".join(f"{alias}.{f}" for f in fields)


def conv(r, offset: int = 0) -> ConversationRow:
    direct_key = r[offset + 3]
    return ConversationRow(
        id=r[offset], type=ConversationType(r[offset + 1]), group_id=r[offset + 2],
        direct_users=tuple(direct_key.split(":")) if direct_key else (),
        message_ttl_s=r[offset + 4], create_time=r[offset + 5], update_time=r[offset + 6],
        last_sequence=r[offset + 7], last_activity_time=r[offset + 8],
        closed=bool(r[offset + 9]), version=r[offset + 10], settings_version=r[offset + 11])


def msg(r, offset: int = 0) -> MessageRow | None:
    if r[offset] is None:
        return None
    sk, se = r[offset + 10], r[offset + 11]
    return MessageRow(
        id=r[offset], conversation_id=r[offset + 1], sequence=r[offset + 2],
        kind=MessageKind(r[offset + 3]), sender_user=r[offset + 4],
        sender_device=r[offset + 5], create_time=r[offset + 6], expire_time=r[offset + 7],
        delete_time=r[offset + 8], content_hash=bytes(r[offset + 9]),
        sender_key_ciphertext=None if sk is None else bytes(sk),
        system_event=None if se is None else bytes(se), envelope_count=r[offset + 12],
        ciphertext_bytes=r[offset + 13])


def env(r, offset: int = 0) -> EnvelopeRow | None:
    if r[offset] is None:
        return None
    return EnvelopeRow(r[offset], r[offset + 1], r[offset + 2], bytes(r[offset + 3]),
                       bytes(r[offset + 4]))
