import datetime

from buf.validate import validate_pb2 as _validate_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import resource_pb2 as _resource_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from zynk.api.v1 import annotations_pb2 as _annotations_pb2_1
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnvelopeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENVELOPE_TYPE_UNSPECIFIED: _ClassVar[EnvelopeType]
    ENVELOPE_TYPE_PREKEY: _ClassVar[EnvelopeType]
    ENVELOPE_TYPE_RATCHET: _ClassVar[EnvelopeType]

class ReceiptType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECEIPT_TYPE_UNSPECIFIED: _ClassVar[ReceiptType]
    RECEIPT_TYPE_DELIVERED: _ClassVar[ReceiptType]
    RECEIPT_TYPE_READ: _ClassVar[ReceiptType]
ENVELOPE_TYPE_UNSPECIFIED: EnvelopeType
ENVELOPE_TYPE_PREKEY: EnvelopeType
ENVELOPE_TYPE_RATCHET: EnvelopeType
RECEIPT_TYPE_UNSPECIFIED: ReceiptType
RECEIPT_TYPE_DELIVERED: ReceiptType
RECEIPT_TYPE_READ: ReceiptType

class Conversation(_message.Message):
    __slots__ = ("name", "type", "participants", "group", "message_ttl", "create_time", "update_time", "last_sequence", "last_activity_time", "read_sequence", "etag")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[Conversation.Type]
        TYPE_DIRECT: _ClassVar[Conversation.Type]
        TYPE_GROUP: _ClassVar[Conversation.Type]
    TYPE_UNSPECIFIED: Conversation.Type
    TYPE_DIRECT: Conversation.Type
    TYPE_GROUP: Conversation.Type
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_TTL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVITY_TIME_FIELD_NUMBER: _ClassVar[int]
    READ_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: Conversation.Type
    participants: _containers.RepeatedScalarFieldContainer[str]
    group: str
    message_ttl: _duration_pb2.Duration
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    last_sequence: int
    last_activity_time: _timestamp_pb2.Timestamp
    read_sequence: int
    etag: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[Conversation.Type, str]] = ..., participants: _Optional[_Iterable[str]] = ..., group: _Optional[str] = ..., message_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_sequence: _Optional[int] = ..., last_activity_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., read_sequence: _Optional[int] = ..., etag: _Optional[str] = ...) -> None: ...

class Envelope(_message.Message):
    __slots__ = ("recipient_device", "type", "ciphertext")
    RECIPIENT_DEVICE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    recipient_device: str
    type: EnvelopeType
    ciphertext: bytes
    def __init__(self, recipient_device: _Optional[str] = ..., type: _Optional[_Union[EnvelopeType, str]] = ..., ciphertext: _Optional[bytes] = ...) -> None: ...

class PairwiseContent(_message.Message):
    __slots__ = ("envelopes",)
    ENVELOPES_FIELD_NUMBER: _ClassVar[int]
    envelopes: _containers.RepeatedCompositeFieldContainer[Envelope]
    def __init__(self, envelopes: _Optional[_Iterable[_Union[Envelope, _Mapping]]] = ...) -> None: ...

class SenderKeyContent(_message.Message):
    __slots__ = ("ciphertext",)
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    ciphertext: bytes
    def __init__(self, ciphertext: _Optional[bytes] = ...) -> None: ...

class SystemEvent(_message.Message):
    __slots__ = ("type", "actor", "users", "message_ttl")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[SystemEvent.Type]
        TYPE_CONVERSATION_CREATED: _ClassVar[SystemEvent.Type]
        TYPE_MEMBERS_ADDED: _ClassVar[SystemEvent.Type]
        TYPE_MEMBERS_REMOVED: _ClassVar[SystemEvent.Type]
        TYPE_MESSAGE_TTL_CHANGED: _ClassVar[SystemEvent.Type]
        TYPE_CONVERSATION_CLOSED: _ClassVar[SystemEvent.Type]
    TYPE_UNSPECIFIED: SystemEvent.Type
    TYPE_CONVERSATION_CREATED: SystemEvent.Type
    TYPE_MEMBERS_ADDED: SystemEvent.Type
    TYPE_MEMBERS_REMOVED: SystemEvent.Type
    TYPE_MESSAGE_TTL_CHANGED: SystemEvent.Type
    TYPE_CONVERSATION_CLOSED: SystemEvent.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_TTL_FIELD_NUMBER: _ClassVar[int]
    type: SystemEvent.Type
    actor: str
    users: _containers.RepeatedScalarFieldContainer[str]
    message_ttl: _duration_pb2.Duration
    def __init__(self, type: _Optional[_Union[SystemEvent.Type, str]] = ..., actor: _Optional[str] = ..., users: _Optional[_Iterable[str]] = ..., message_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class EnvelopeDigest(_message.Message):
    __slots__ = ("recipient_device", "type", "ciphertext_sha256")
    RECIPIENT_DEVICE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_SHA256_FIELD_NUMBER: _ClassVar[int]
    recipient_device: str
    type: EnvelopeType
    ciphertext_sha256: bytes
    def __init__(self, recipient_device: _Optional[str] = ..., type: _Optional[_Union[EnvelopeType, str]] = ..., ciphertext_sha256: _Optional[bytes] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("name", "sequence", "sender", "sender_device", "create_time", "expire_time", "delete_time", "envelope", "sender_key", "system_event", "content_hash", "envelope_digests")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    SENDER_DEVICE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    DELETE_TIME_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    SENDER_KEY_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_EVENT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_DIGESTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    sequence: int
    sender: str
    sender_device: str
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    delete_time: _timestamp_pb2.Timestamp
    envelope: Envelope
    sender_key: SenderKeyContent
    system_event: SystemEvent
    content_hash: bytes
    envelope_digests: _containers.RepeatedCompositeFieldContainer[EnvelopeDigest]
    def __init__(self, name: _Optional[str] = ..., sequence: _Optional[int] = ..., sender: _Optional[str] = ..., sender_device: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., envelope: _Optional[_Union[Envelope, _Mapping]] = ..., sender_key: _Optional[_Union[SenderKeyContent, _Mapping]] = ..., system_event: _Optional[_Union[SystemEvent, _Mapping]] = ..., content_hash: _Optional[bytes] = ..., envelope_digests: _Optional[_Iterable[_Union[EnvelopeDigest, _Mapping]]] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("name", "user", "deliver_time", "read_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    DELIVER_TIME_FIELD_NUMBER: _ClassVar[int]
    READ_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    user: str
    deliver_time: _timestamp_pb2.Timestamp
    read_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., user: _Optional[str] = ..., deliver_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., read_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReceiptEvent(_message.Message):
    __slots__ = ("type", "conversation", "user", "messages", "read_sequence", "event_time")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    READ_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    type: ReceiptType
    conversation: str
    user: str
    messages: _containers.RepeatedScalarFieldContainer[str]
    read_sequence: int
    event_time: _timestamp_pb2.Timestamp
    def __init__(self, type: _Optional[_Union[ReceiptType, str]] = ..., conversation: _Optional[str] = ..., user: _Optional[str] = ..., messages: _Optional[_Iterable[str]] = ..., read_sequence: _Optional[int] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReadStateEvent(_message.Message):
    __slots__ = ("conversation", "read_sequence")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    READ_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    read_sequence: int
    def __init__(self, conversation: _Optional[str] = ..., read_sequence: _Optional[int] = ...) -> None: ...

class CaughtUp(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Keepalive(_message.Message):
    __slots__ = ("server_time",)
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    server_time: _timestamp_pb2.Timestamp
    def __init__(self, server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateConversationRequest(_message.Message):
    __slots__ = ("conversation",)
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ...) -> None: ...

class CreateConversationResponse(_message.Message):
    __slots__ = ("conversation",)
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ...) -> None: ...

class GetConversationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetConversationResponse(_message.Message):
    __slots__ = ("conversation",)
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ...) -> None: ...

class ListConversationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListConversationsResponse(_message.Message):
    __slots__ = ("conversations", "next_page_token")
    CONVERSATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    conversations: _containers.RepeatedCompositeFieldContainer[Conversation]
    next_page_token: str
    def __init__(self, conversations: _Optional[_Iterable[_Union[Conversation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateConversationRequest(_message.Message):
    __slots__ = ("conversation", "update_mask")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateConversationResponse(_message.Message):
    __slots__ = ("conversation",)
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ...) -> None: ...

class SendMessageRequest(_message.Message):
    __slots__ = ("parent", "message_id", "pairwise", "sender_key")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    PAIRWISE_FIELD_NUMBER: _ClassVar[int]
    SENDER_KEY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    message_id: str
    pairwise: PairwiseContent
    sender_key: SenderKeyContent
    def __init__(self, parent: _Optional[str] = ..., message_id: _Optional[str] = ..., pairwise: _Optional[_Union[PairwiseContent, _Mapping]] = ..., sender_key: _Optional[_Union[SenderKeyContent, _Mapping]] = ...) -> None: ...

class SendMessageResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: Message
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ...) -> None: ...

class GetMessageRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetMessageResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: Message
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ...) -> None: ...

class ListMessagesRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "min_sequence", "max_sequence", "order_by")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MIN_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    min_sequence: int
    max_sequence: int
    order_by: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., min_sequence: _Optional[int] = ..., max_sequence: _Optional[int] = ..., order_by: _Optional[str] = ...) -> None: ...

class ListMessagesResponse(_message.Message):
    __slots__ = ("messages", "next_page_token")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    next_page_token: str
    def __init__(self, messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteMessageRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteMessageResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: Message
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ...) -> None: ...

class MarkReadRequest(_message.Message):
    __slots__ = ("conversation", "read_sequence", "suppress_receipts")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    READ_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SUPPRESS_RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    read_sequence: int
    suppress_receipts: bool
    def __init__(self, conversation: _Optional[str] = ..., read_sequence: _Optional[int] = ..., suppress_receipts: _Optional[bool] = ...) -> None: ...

class MarkReadResponse(_message.Message):
    __slots__ = ("read_sequence",)
    READ_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    read_sequence: int
    def __init__(self, read_sequence: _Optional[int] = ...) -> None: ...

class ListReceiptsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListReceiptsResponse(_message.Message):
    __slots__ = ("receipts", "next_page_token")
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    receipts: _containers.RepeatedCompositeFieldContainer[Receipt]
    next_page_token: str
    def __init__(self, receipts: _Optional[_Iterable[_Union[Receipt, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("device", "after_cursor")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    AFTER_CURSOR_FIELD_NUMBER: _ClassVar[int]
    device: str
    after_cursor: str
    def __init__(self, device: _Optional[str] = ..., after_cursor: _Optional[str] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("cursor", "message", "receipt", "read_state", "caught_up", "keepalive")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    READ_STATE_FIELD_NUMBER: _ClassVar[int]
    CAUGHT_UP_FIELD_NUMBER: _ClassVar[int]
    KEEPALIVE_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    message: Message
    receipt: ReceiptEvent
    read_state: ReadStateEvent
    caught_up: CaughtUp
    keepalive: Keepalive
    def __init__(self, cursor: _Optional[str] = ..., message: _Optional[_Union[Message, _Mapping]] = ..., receipt: _Optional[_Union[ReceiptEvent, _Mapping]] = ..., read_state: _Optional[_Union[ReadStateEvent, _Mapping]] = ..., caught_up: _Optional[_Union[CaughtUp, _Mapping]] = ..., keepalive: _Optional[_Union[Keepalive, _Mapping]] = ...) -> None: ...

class AcknowledgeDeliveriesRequest(_message.Message):
    __slots__ = ("device", "cursor")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    device: str
    cursor: str
    def __init__(self, device: _Optional[str] = ..., cursor: _Optional[str] = ...) -> None: ...

class AcknowledgeDeliveriesResponse(_message.Message):
    __slots__ = ("pending_count",)
    PENDING_COUNT_FIELD_NUMBER: _ClassVar[int]
    pending_count: int
    def __init__(self, pending_count: _Optional[int] = ...) -> None: ...

class ApplyGroupMembershipChangeRequest(_message.Message):
    __slots__ = ("group", "change_id", "actor", "added_users", "removed_users", "group_deleted", "admins")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ADDED_USERS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_USERS_FIELD_NUMBER: _ClassVar[int]
    GROUP_DELETED_FIELD_NUMBER: _ClassVar[int]
    ADMINS_FIELD_NUMBER: _ClassVar[int]
    group: str
    change_id: str
    actor: str
    added_users: _containers.RepeatedScalarFieldContainer[str]
    removed_users: _containers.RepeatedScalarFieldContainer[str]
    group_deleted: bool
    admins: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, group: _Optional[str] = ..., change_id: _Optional[str] = ..., actor: _Optional[str] = ..., added_users: _Optional[_Iterable[str]] = ..., removed_users: _Optional[_Iterable[str]] = ..., group_deleted: _Optional[bool] = ..., admins: _Optional[_Iterable[str]] = ...) -> None: ...

class ApplyGroupMembershipChangeResponse(_message.Message):
    __slots__ = ("conversation", "sequence")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    sequence: int
    def __init__(self, conversation: _Optional[str] = ..., sequence: _Optional[int] = ...) -> None: ...

class CheckConversationMembershipRequest(_message.Message):
    __slots__ = ("conversation", "user")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    user: str
    def __init__(self, conversation: _Optional[str] = ..., user: _Optional[str] = ...) -> None: ...

class CheckConversationMembershipResponse(_message.Message):
    __slots__ = ("member", "type", "group")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    member: bool
    type: Conversation.Type
    group: str
    def __init__(self, member: _Optional[bool] = ..., type: _Optional[_Union[Conversation.Type, str]] = ..., group: _Optional[str] = ...) -> None: ...

class FilterConversationPeersRequest(_message.Message):
    __slots__ = ("user", "users")
    USER_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    user: str
    users: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user: _Optional[str] = ..., users: _Optional[_Iterable[str]] = ...) -> None: ...

class FilterConversationPeersResponse(_message.Message):
    __slots__ = ("peers",)
    PEERS_FIELD_NUMBER: _ClassVar[int]
    peers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, peers: _Optional[_Iterable[str]] = ...) -> None: ...

class RelayRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[RelayRequestItem]
    def __init__(self, items: _Optional[_Iterable[_Union[RelayRequestItem, _Mapping]]] = ...) -> None: ...

class RelayRequestItem(_message.Message):
    __slots__ = ("slot", "attach", "detach", "send", "acknowledge", "mark_read", "renew")
    SLOT_FIELD_NUMBER: _ClassVar[int]
    ATTACH_FIELD_NUMBER: _ClassVar[int]
    DETACH_FIELD_NUMBER: _ClassVar[int]
    SEND_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGE_FIELD_NUMBER: _ClassVar[int]
    MARK_READ_FIELD_NUMBER: _ClassVar[int]
    RENEW_FIELD_NUMBER: _ClassVar[int]
    slot: int
    attach: RelayAttach
    detach: RelayDetach
    send: RelaySend
    acknowledge: RelayAcknowledge
    mark_read: RelayMarkRead
    renew: RelayRenew
    def __init__(self, slot: _Optional[int] = ..., attach: _Optional[_Union[RelayAttach, _Mapping]] = ..., detach: _Optional[_Union[RelayDetach, _Mapping]] = ..., send: _Optional[_Union[RelaySend, _Mapping]] = ..., acknowledge: _Optional[_Union[RelayAcknowledge, _Mapping]] = ..., mark_read: _Optional[_Union[RelayMarkRead, _Mapping]] = ..., renew: _Optional[_Union[RelayRenew, _Mapping]] = ...) -> None: ...

class RelayAttach(_message.Message):
    __slots__ = ("access_token", "subscribe")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    subscribe: SubscribeRequest
    def __init__(self, access_token: _Optional[str] = ..., subscribe: _Optional[_Union[SubscribeRequest, _Mapping]] = ...) -> None: ...

class RelayDetach(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RelayRenew(_message.Message):
    __slots__ = ("access_token", "request_id")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    request_id: str
    def __init__(self, access_token: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RelaySend(_message.Message):
    __slots__ = ("request_id", "request")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    request: SendMessageRequest
    def __init__(self, request_id: _Optional[str] = ..., request: _Optional[_Union[SendMessageRequest, _Mapping]] = ...) -> None: ...

class RelayAcknowledge(_message.Message):
    __slots__ = ("request_id", "request")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    request: AcknowledgeDeliveriesRequest
    def __init__(self, request_id: _Optional[str] = ..., request: _Optional[_Union[AcknowledgeDeliveriesRequest, _Mapping]] = ...) -> None: ...

class RelayMarkRead(_message.Message):
    __slots__ = ("request_id", "request")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    request: MarkReadRequest
    def __init__(self, request_id: _Optional[str] = ..., request: _Optional[_Union[MarkReadRequest, _Mapping]] = ...) -> None: ...

class RelayResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[RelayResponseItem]
    def __init__(self, items: _Optional[_Iterable[_Union[RelayResponseItem, _Mapping]]] = ...) -> None: ...

class RelayResponseItem(_message.Message):
    __slots__ = ("slot", "inbox", "result", "detached")
    SLOT_FIELD_NUMBER: _ClassVar[int]
    INBOX_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    slot: int
    inbox: SubscribeResponse
    result: RelayResult
    detached: RelayDetached
    def __init__(self, slot: _Optional[int] = ..., inbox: _Optional[_Union[SubscribeResponse, _Mapping]] = ..., result: _Optional[_Union[RelayResult, _Mapping]] = ..., detached: _Optional[_Union[RelayDetached, _Mapping]] = ...) -> None: ...

class RelayResult(_message.Message):
    __slots__ = ("request_id", "send", "acknowledge", "mark_read", "renewed", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SEND_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGE_FIELD_NUMBER: _ClassVar[int]
    MARK_READ_FIELD_NUMBER: _ClassVar[int]
    RENEWED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    send: SendMessageResponse
    acknowledge: AcknowledgeDeliveriesResponse
    mark_read: MarkReadResponse
    renewed: RelayRenewed
    error: _status_pb2.Status
    def __init__(self, request_id: _Optional[str] = ..., send: _Optional[_Union[SendMessageResponse, _Mapping]] = ..., acknowledge: _Optional[_Union[AcknowledgeDeliveriesResponse, _Mapping]] = ..., mark_read: _Optional[_Union[MarkReadResponse, _Mapping]] = ..., renewed: _Optional[_Union[RelayRenewed, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class RelayRenewed(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RelayDetached(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: _status_pb2.Status
    def __init__(self, status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...
