import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConversationType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONVERSATION_TYPE_UNSPECIFIED: _ClassVar[ConversationType]
    CONVERSATION_TYPE_DIRECT: _ClassVar[ConversationType]
    CONVERSATION_TYPE_GROUP: _ClassVar[ConversationType]

class CallMedia(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_MEDIA_UNSPECIFIED: _ClassVar[CallMedia]
    CALL_MEDIA_AUDIO: _ClassVar[CallMedia]
    CALL_MEDIA_VIDEO: _ClassVar[CallMedia]

class CallTopology(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_TOPOLOGY_UNSPECIFIED: _ClassVar[CallTopology]
    CALL_TOPOLOGY_P2P: _ClassVar[CallTopology]
    CALL_TOPOLOGY_SFU: _ClassVar[CallTopology]

class CallEndReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_END_REASON_UNSPECIFIED: _ClassVar[CallEndReason]
    CALL_END_REASON_HANGUP: _ClassVar[CallEndReason]
    CALL_END_REASON_UNANSWERED: _ClassVar[CallEndReason]
    CALL_END_REASON_DECLINED: _ClassVar[CallEndReason]
    CALL_END_REASON_BUSY: _ClassVar[CallEndReason]
    CALL_END_REASON_TERMINATED: _ClassVar[CallEndReason]
CONVERSATION_TYPE_UNSPECIFIED: ConversationType
CONVERSATION_TYPE_DIRECT: ConversationType
CONVERSATION_TYPE_GROUP: ConversationType
CALL_MEDIA_UNSPECIFIED: CallMedia
CALL_MEDIA_AUDIO: CallMedia
CALL_MEDIA_VIDEO: CallMedia
CALL_TOPOLOGY_UNSPECIFIED: CallTopology
CALL_TOPOLOGY_P2P: CallTopology
CALL_TOPOLOGY_SFU: CallTopology
CALL_END_REASON_UNSPECIFIED: CallEndReason
CALL_END_REASON_HANGUP: CallEndReason
CALL_END_REASON_UNANSWERED: CallEndReason
CALL_END_REASON_DECLINED: CallEndReason
CALL_END_REASON_BUSY: CallEndReason
CALL_END_REASON_TERMINATED: CallEndReason

class EventMetadata(_message.Message):
    __slots__ = ("event_id", "occur_time", "producer", "traceparent")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCUR_TIME_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    occur_time: _timestamp_pb2.Timestamp
    producer: str
    traceparent: str
    def __init__(self, event_id: _Optional[str] = ..., occur_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., producer: _Optional[str] = ..., traceparent: _Optional[str] = ...) -> None: ...

class EventEnvelope(_message.Message):
    __slots__ = ("metadata", "topic", "partition_key", "message_sent", "message_delivered", "message_read", "call_initiated", "call_ended", "file_uploaded", "user_registered", "group_created", "device_changed")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_KEY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_SENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_DELIVERED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_READ_FIELD_NUMBER: _ClassVar[int]
    CALL_INITIATED_FIELD_NUMBER: _ClassVar[int]
    CALL_ENDED_FIELD_NUMBER: _ClassVar[int]
    FILE_UPLOADED_FIELD_NUMBER: _ClassVar[int]
    USER_REGISTERED_FIELD_NUMBER: _ClassVar[int]
    GROUP_CREATED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    metadata: EventMetadata
    topic: str
    partition_key: str
    message_sent: MessageSent
    message_delivered: MessageDelivered
    message_read: MessageRead
    call_initiated: CallInitiated
    call_ended: CallEnded
    file_uploaded: FileUploaded
    user_registered: UserRegistered
    group_created: GroupCreated
    device_changed: DeviceChanged
    def __init__(self, metadata: _Optional[_Union[EventMetadata, _Mapping]] = ..., topic: _Optional[str] = ..., partition_key: _Optional[str] = ..., message_sent: _Optional[_Union[MessageSent, _Mapping]] = ..., message_delivered: _Optional[_Union[MessageDelivered, _Mapping]] = ..., message_read: _Optional[_Union[MessageRead, _Mapping]] = ..., call_initiated: _Optional[_Union[CallInitiated, _Mapping]] = ..., call_ended: _Optional[_Union[CallEnded, _Mapping]] = ..., file_uploaded: _Optional[_Union[FileUploaded, _Mapping]] = ..., user_registered: _Optional[_Union[UserRegistered, _Mapping]] = ..., group_created: _Optional[_Union[GroupCreated, _Mapping]] = ..., device_changed: _Optional[_Union[DeviceChanged, _Mapping]] = ...) -> None: ...

class MessageSent(_message.Message):
    __slots__ = ("message", "conversation", "conversation_type", "sender", "sender_device", "sequence", "content_hash", "envelope_count", "ciphertext_bytes", "create_time", "expire_time")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    SENDER_DEVICE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    message: str
    conversation: str
    conversation_type: ConversationType
    sender: str
    sender_device: str
    sequence: int
    content_hash: bytes
    envelope_count: int
    ciphertext_bytes: int
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, message: _Optional[str] = ..., conversation: _Optional[str] = ..., conversation_type: _Optional[_Union[ConversationType, str]] = ..., sender: _Optional[str] = ..., sender_device: _Optional[str] = ..., sequence: _Optional[int] = ..., content_hash: _Optional[bytes] = ..., envelope_count: _Optional[int] = ..., ciphertext_bytes: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MessageDelivered(_message.Message):
    __slots__ = ("message", "conversation", "sender", "recipient", "recipient_device", "deliver_time")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_DEVICE_FIELD_NUMBER: _ClassVar[int]
    DELIVER_TIME_FIELD_NUMBER: _ClassVar[int]
    message: str
    conversation: str
    sender: str
    recipient: str
    recipient_device: str
    deliver_time: _timestamp_pb2.Timestamp
    def __init__(self, message: _Optional[str] = ..., conversation: _Optional[str] = ..., sender: _Optional[str] = ..., recipient: _Optional[str] = ..., recipient_device: _Optional[str] = ..., deliver_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MessageRead(_message.Message):
    __slots__ = ("conversation", "reader", "read_sequence", "receipts_suppressed", "read_time")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    READER_FIELD_NUMBER: _ClassVar[int]
    READ_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    READ_TIME_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    reader: str
    read_sequence: int
    receipts_suppressed: bool
    read_time: _timestamp_pb2.Timestamp
    def __init__(self, conversation: _Optional[str] = ..., reader: _Optional[str] = ..., read_sequence: _Optional[int] = ..., receipts_suppressed: _Optional[bool] = ..., read_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CallInitiated(_message.Message):
    __slots__ = ("call", "conversation", "initiator", "initiator_device", "media", "topology", "invitees", "create_time")
    CALL_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    INITIATOR_FIELD_NUMBER: _ClassVar[int]
    INITIATOR_DEVICE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    TOPOLOGY_FIELD_NUMBER: _ClassVar[int]
    INVITEES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    call: str
    conversation: str
    initiator: str
    initiator_device: str
    media: CallMedia
    topology: CallTopology
    invitees: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, call: _Optional[str] = ..., conversation: _Optional[str] = ..., initiator: _Optional[str] = ..., initiator_device: _Optional[str] = ..., media: _Optional[_Union[CallMedia, str]] = ..., topology: _Optional[_Union[CallTopology, str]] = ..., invitees: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CallEnded(_message.Message):
    __slots__ = ("call", "conversation", "media", "topology", "end_reason", "start_time", "end_time", "duration", "participant_count")
    CALL_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    TOPOLOGY_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_COUNT_FIELD_NUMBER: _ClassVar[int]
    call: str
    conversation: str
    media: CallMedia
    topology: CallTopology
    end_reason: CallEndReason
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    participant_count: int
    def __init__(self, call: _Optional[str] = ..., conversation: _Optional[str] = ..., media: _Optional[_Union[CallMedia, str]] = ..., topology: _Optional[_Union[CallTopology, str]] = ..., end_reason: _Optional[_Union[CallEndReason, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., participant_count: _Optional[int] = ...) -> None: ...

class FileUploaded(_message.Message):
    __slots__ = ("file", "owner", "size_bytes", "create_time", "expire_time")
    FILE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    file: str
    owner: str
    size_bytes: int
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, file: _Optional[str] = ..., owner: _Optional[str] = ..., size_bytes: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UserRegistered(_message.Message):
    __slots__ = ("user", "username", "display_name", "create_time")
    USER_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    user: str
    username: str
    display_name: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, user: _Optional[str] = ..., username: _Optional[str] = ..., display_name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GroupCreated(_message.Message):
    __slots__ = ("group", "creator", "conversation", "display_name", "discoverable", "member_count", "create_time")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DISCOVERABLE_FIELD_NUMBER: _ClassVar[int]
    MEMBER_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    group: str
    creator: str
    conversation: str
    display_name: str
    discoverable: bool
    member_count: int
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, group: _Optional[str] = ..., creator: _Optional[str] = ..., conversation: _Optional[str] = ..., display_name: _Optional[str] = ..., discoverable: _Optional[bool] = ..., member_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeviceChanged(_message.Message):
    __slots__ = ("device", "user", "change", "change_time")
    class Change(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CHANGE_UNSPECIFIED: _ClassVar[DeviceChanged.Change]
        CHANGE_ADDED: _ClassVar[DeviceChanged.Change]
        CHANGE_REVOKED: _ClassVar[DeviceChanged.Change]
    CHANGE_UNSPECIFIED: DeviceChanged.Change
    CHANGE_ADDED: DeviceChanged.Change
    CHANGE_REVOKED: DeviceChanged.Change
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_TIME_FIELD_NUMBER: _ClassVar[int]
    device: str
    user: str
    change: DeviceChanged.Change
    change_time: _timestamp_pb2.Timestamp
    def __init__(self, device: _Optional[str] = ..., user: _Optional[str] = ..., change: _Optional[_Union[DeviceChanged.Change, str]] = ..., change_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
