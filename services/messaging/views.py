"""Rows -> contract messages: a conversation as its member sees it, a message as one device
sees it (its own envelope only), and inbox entries as SubscribeResponses.

Used by the servicer for responses and by the inbox stream for live entries, so a message
looks the same whether it arrives live, on replay or from ListMessages."""

from __future__ import annotations

from collections.abc import Sequence

from services.messaging import names
from services.messaging.cursors import encode_cursor
from services.messaging.hashing import EnvelopeDigest
from services.messaging.store import (
    ConversationRow,
    ConversationType,
    EntryKind,
    EnvelopeRow,
    InboxItem,
    MessageKind,
    MessageRow,
    ReceiptRow,
)
from services.runtime.pbtime import duration, timestamp
from zynk.messaging.v1 import messaging_pb2 as pb


def etag(row: ConversationRow) -> str:
    """AIP-154: changes whenever a settable field (message_ttl) changes."""
    return f'"{row.settings_version}"'


def conversation(row: ConversationRow, read_sequence: int) -> pb.Conversation:
    direct = row.type is ConversationType.DIRECT
    return pb.Conversation(
        name=names.conversation_name(row.id), type=int(row.type),
        participants=[names.user_name(u) for u in row.direct_users] if direct else (),
        group="" if direct else names.group_name(row.group_id),
        message_ttl=duration(row.message_ttl_s), create_time=timestamp(row.create_time),
        update_time=timestamp(row.update_time), last_sequence=row.last_sequence,
        last_activity_time=timestamp(row.last_activity_time), read_sequence=read_sequence,
        etag=etag(row))


def message(row: MessageRow, now: float, *, envelope: EnvelopeRow | None = None,
            sender_key_visible: bool = True,
            digests: Sequence[EnvelopeDigest] = ()) -> pb.Message:
    """`row` as one device sees it: `envelope` is that device's (if any); a tombstone keeps
    only name, sequence and delete_time."""
    name = names.message_name(row.conversation_id, row.id)
    if row.erased(now):
        delete_time = row.delete_time if row.delete_time is not None else row.expire_time
        return pb.Message(name=name, sequence=row.sequence, delete_time=timestamp(delete_time))
    out = pb.Message(name=name, sequence=row.sequence, create_time=timestamp(row.create_time),
                     expire_time=timestamp(row.expire_time))
    if row.kind is MessageKind.SYSTEM:
        if row.system_event:
            out.system_event.ParseFromString(row.system_event)
        return out
    out.sender = names.user_name(row.sender_user)
    out.sender_device = names.device_name(row.sender_user, row.sender_device)
    out.content_hash = row.content_hash
    if row.kind is MessageKind.SENDER_KEY:
        if sender_key_visible and row.sender_key_ciphertext is not None:
            out.sender_key.ciphertext = row.sender_key_ciphertext
    elif envelope is not None:
        out.envelope.recipient_device = names.device_name(envelope.user_id, envelope.device_id)
        out.envelope.type = envelope.type
        out.envelope.ciphertext = envelope.ciphertext
    for d in digests:
        out.envelope_digests.add(recipient_device=d.recipient_device, type=d.type,
                                 ciphertext_sha256=d.ciphertext_sha256)
    return out


def inbox_entry(device_id: str, item: InboxItem, now: float) -> pb.SubscribeResponse:
    cursor = encode_cursor(device_id, item.seq)
    if item.kind is EntryKind.MESSAGE:
        if item.message is None:  # messages are never removed, only erased: cannot happen,
            return pb.SubscribeResponse(cursor=cursor, message=pb.Message())  # but stay ackable
        return pb.SubscribeResponse(cursor=cursor,
                                    message=message(item.message, now, envelope=item.envelope))
    if item.kind is EntryKind.RECEIPT:
        return pb.SubscribeResponse(cursor=cursor,
                                    receipt=pb.ReceiptEvent.FromString(item.payload))
    return pb.SubscribeResponse(cursor=cursor,
                                read_state=pb.ReadStateEvent.FromString(item.payload))


def receipt(conversation_id: str, message_id: str, row: ReceiptRow) -> pb.Receipt:
    return pb.Receipt(name=names.receipt_name(conversation_id, message_id, row.user_id),
                      user=names.user_name(row.user_id), deliver_time=timestamp(row.deliver_time),
                      read_time=timestamp(row.read_time))
