"""The bus events messaging produces (through the outbox, in the same transaction as the
change) and the one it consumes (devices.changed)."""

from __future__ import annotations

from services.messaging import names
from services.messaging.store import ConversationType, MessageKind, MessageRow, OutboxEvent
from services.runtime.events import envelope
from services.runtime.pbtime import timestamp
from zynk.events.v1 import events_pb2

TOPIC_SENT = "messages.sent"
TOPIC_DELIVERED = "messages.delivered"
TOPIC_READ = "messages.read"
TOPIC_DEVICES_CHANGED = "devices.changed"
PRODUCER = "messaging"

_CONVERSATION_TYPE = {
    ConversationType.DIRECT: events_pb2.CONVERSATION_TYPE_DIRECT,
    ConversationType.GROUP: events_pb2.CONVERSATION_TYPE_GROUP,
}


def _envelope(topic: str, key: str, occur_time: float, **payload) -> OutboxEvent:
    env = envelope(PRODUCER, topic, key, occur_time, **payload)
    return OutboxEvent(topic, key, env, env.metadata.event_id)


def message_sent(row: MessageRow, conversation_type: ConversationType) -> OutboxEvent:
    return _envelope(TOPIC_SENT, row.conversation_id, row.create_time,
                     message_sent=events_pb2.MessageSent(
                         message=names.message_name(row.conversation_id, row.id),
                         conversation=names.conversation_name(row.conversation_id),
                         conversation_type=_CONVERSATION_TYPE[conversation_type],
                         sender=names.user_name(row.sender_user),
                         sender_device=names.device_name(row.sender_user, row.sender_device),
                         sequence=row.sequence, content_hash=row.content_hash,
                         envelope_count=(row.envelope_count
                                         if row.kind is MessageKind.PAIRWISE else 0),
                         ciphertext_bytes=row.ciphertext_bytes,
                         create_time=timestamp(row.create_time),
                         expire_time=timestamp(row.expire_time)))


def message_delivered(conversation_id: str, message_id: str, sender_user: str,
                      recipient_user: str, recipient_device: str, now: float) -> OutboxEvent:
    return _envelope(TOPIC_DELIVERED, conversation_id, now,
                     message_delivered=events_pb2.MessageDelivered(
                         message=names.message_name(conversation_id, message_id),
                         conversation=names.conversation_name(conversation_id),
                         sender=names.user_name(sender_user),
                         recipient=names.user_name(recipient_user),
                         recipient_device=names.device_name(recipient_user, recipient_device),
                         deliver_time=timestamp(now)))


def message_read(conversation_id: str, reader: str, read_sequence: int, suppressed: bool,
                 now: float) -> OutboxEvent:
    return _envelope(TOPIC_READ, conversation_id, now,
                     message_read=events_pb2.MessageRead(
                         conversation=names.conversation_name(conversation_id),
                         reader=names.user_name(reader), read_sequence=read_sequence,
                         receipts_suppressed=suppressed, read_time=timestamp(now)))


def device_changed(payload: bytes) -> events_pb2.DeviceChanged | None:
    env = events_pb2.EventEnvelope.FromString(payload)
    return env.device_changed if env.WhichOneof("payload") == "device_changed" else None
