import datetime

from buf.validate import validate_pb2 as _validate_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import resource_pb2 as _resource_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MediaType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEDIA_TYPE_UNSPECIFIED: _ClassVar[MediaType]
    MEDIA_TYPE_AUDIO: _ClassVar[MediaType]
    MEDIA_TYPE_VIDEO: _ClassVar[MediaType]

class Topology(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOPOLOGY_UNSPECIFIED: _ClassVar[Topology]
    TOPOLOGY_P2P: _ClassVar[Topology]
    TOPOLOGY_SFU: _ClassVar[Topology]

class CallState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_STATE_UNSPECIFIED: _ClassVar[CallState]
    CALL_STATE_RINGING: _ClassVar[CallState]
    CALL_STATE_ACTIVE: _ClassVar[CallState]
    CALL_STATE_ENDED: _ClassVar[CallState]

class EndReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    END_REASON_UNSPECIFIED: _ClassVar[EndReason]
    END_REASON_HANGUP: _ClassVar[EndReason]
    END_REASON_UNANSWERED: _ClassVar[EndReason]
    END_REASON_DECLINED: _ClassVar[EndReason]
    END_REASON_BUSY: _ClassVar[EndReason]
    END_REASON_TERMINATED: _ClassVar[EndReason]

class SignalType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNAL_TYPE_UNSPECIFIED: _ClassVar[SignalType]
    SIGNAL_TYPE_OFFER: _ClassVar[SignalType]
    SIGNAL_TYPE_ANSWER: _ClassVar[SignalType]
    SIGNAL_TYPE_ICE_CANDIDATE: _ClassVar[SignalType]
MEDIA_TYPE_UNSPECIFIED: MediaType
MEDIA_TYPE_AUDIO: MediaType
MEDIA_TYPE_VIDEO: MediaType
TOPOLOGY_UNSPECIFIED: Topology
TOPOLOGY_P2P: Topology
TOPOLOGY_SFU: Topology
CALL_STATE_UNSPECIFIED: CallState
CALL_STATE_RINGING: CallState
CALL_STATE_ACTIVE: CallState
CALL_STATE_ENDED: CallState
END_REASON_UNSPECIFIED: EndReason
END_REASON_HANGUP: EndReason
END_REASON_UNANSWERED: EndReason
END_REASON_DECLINED: EndReason
END_REASON_BUSY: EndReason
END_REASON_TERMINATED: EndReason
SIGNAL_TYPE_UNSPECIFIED: SignalType
SIGNAL_TYPE_OFFER: SignalType
SIGNAL_TYPE_ANSWER: SignalType
SIGNAL_TYPE_ICE_CANDIDATE: SignalType

class Participant(_message.Message):
    __slots__ = ("user", "device", "state", "join_time", "leave_time")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Participant.State]
        STATE_RINGING: _ClassVar[Participant.State]
        STATE_JOINED: _ClassVar[Participant.State]
        STATE_LEFT: _ClassVar[Participant.State]
        STATE_DECLINED: _ClassVar[Participant.State]
        STATE_MISSED: _ClassVar[Participant.State]
    STATE_UNSPECIFIED: Participant.State
    STATE_RINGING: Participant.State
    STATE_JOINED: Participant.State
    STATE_LEFT: Participant.State
    STATE_DECLINED: Participant.State
    STATE_MISSED: Participant.State
    USER_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    JOIN_TIME_FIELD_NUMBER: _ClassVar[int]
    LEAVE_TIME_FIELD_NUMBER: _ClassVar[int]
    user: str
    device: str
    state: Participant.State
    join_time: _timestamp_pb2.Timestamp
    leave_time: _timestamp_pb2.Timestamp
    def __init__(self, user: _Optional[str] = ..., device: _Optional[str] = ..., state: _Optional[_Union[Participant.State, str]] = ..., join_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., leave_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SfuRoom(_message.Message):
    __slots__ = ("url", "room")
    URL_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    url: str
    room: str
    def __init__(self, url: _Optional[str] = ..., room: _Optional[str] = ...) -> None: ...

class Call(_message.Message):
    __slots__ = ("name", "conversation", "media", "topology", "state", "initiator", "participants", "sfu_room", "create_time", "start_time", "end_time", "end_reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    TOPOLOGY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INITIATOR_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    SFU_ROOM_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    conversation: str
    media: MediaType
    topology: Topology
    state: CallState
    initiator: str
    participants: _containers.RepeatedCompositeFieldContainer[Participant]
    sfu_room: SfuRoom
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    end_reason: EndReason
    def __init__(self, name: _Optional[str] = ..., conversation: _Optional[str] = ..., media: _Optional[_Union[MediaType, str]] = ..., topology: _Optional[_Union[Topology, str]] = ..., state: _Optional[_Union[CallState, str]] = ..., initiator: _Optional[str] = ..., participants: _Optional[_Iterable[_Union[Participant, _Mapping]]] = ..., sfu_room: _Optional[_Union[SfuRoom, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_reason: _Optional[_Union[EndReason, str]] = ...) -> None: ...

class Signal(_message.Message):
    __slots__ = ("signal_id", "sender_device", "recipient_device", "type", "payload", "encrypted", "send_time")
    SIGNAL_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_DEVICE_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_DEVICE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    SEND_TIME_FIELD_NUMBER: _ClassVar[int]
    signal_id: str
    sender_device: str
    recipient_device: str
    type: SignalType
    payload: str
    encrypted: bool
    send_time: _timestamp_pb2.Timestamp
    def __init__(self, signal_id: _Optional[str] = ..., sender_device: _Optional[str] = ..., recipient_device: _Optional[str] = ..., type: _Optional[_Union[SignalType, str]] = ..., payload: _Optional[str] = ..., encrypted: _Optional[bool] = ..., send_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class IceServer(_message.Message):
    __slots__ = ("urls", "username", "credential")
    URLS_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    urls: _containers.RepeatedScalarFieldContainer[str]
    username: str
    credential: str
    def __init__(self, urls: _Optional[_Iterable[str]] = ..., username: _Optional[str] = ..., credential: _Optional[str] = ...) -> None: ...

class Keepalive(_message.Message):
    __slots__ = ("server_time",)
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    server_time: _timestamp_pb2.Timestamp
    def __init__(self, server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateCallRequest(_message.Message):
    __slots__ = ("call", "call_id")
    CALL_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    call: Call
    call_id: str
    def __init__(self, call: _Optional[_Union[Call, _Mapping]] = ..., call_id: _Optional[str] = ...) -> None: ...

class CreateCallResponse(_message.Message):
    __slots__ = ("call",)
    CALL_FIELD_NUMBER: _ClassVar[int]
    call: Call
    def __init__(self, call: _Optional[_Union[Call, _Mapping]] = ...) -> None: ...

class GetCallRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetCallResponse(_message.Message):
    __slots__ = ("call",)
    CALL_FIELD_NUMBER: _ClassVar[int]
    call: Call
    def __init__(self, call: _Optional[_Union[Call, _Mapping]] = ...) -> None: ...

class ListCallsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "conversation", "show_ended")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    SHOW_ENDED_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    conversation: str
    show_ended: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., conversation: _Optional[str] = ..., show_ended: _Optional[bool] = ...) -> None: ...

class ListCallsResponse(_message.Message):
    __slots__ = ("calls", "next_page_token")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[Call]
    next_page_token: str
    def __init__(self, calls: _Optional[_Iterable[_Union[Call, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class JoinCallRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class JoinCallResponse(_message.Message):
    __slots__ = ("call", "sfu_token", "sfu_token_expire_time")
    CALL_FIELD_NUMBER: _ClassVar[int]
    SFU_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SFU_TOKEN_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    call: Call
    sfu_token: str
    sfu_token_expire_time: _timestamp_pb2.Timestamp
    def __init__(self, call: _Optional[_Union[Call, _Mapping]] = ..., sfu_token: _Optional[str] = ..., sfu_token_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LeaveCallRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: EndReason
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[_Union[EndReason, str]] = ...) -> None: ...

class LeaveCallResponse(_message.Message):
    __slots__ = ("call",)
    CALL_FIELD_NUMBER: _ClassVar[int]
    call: Call
    def __init__(self, call: _Optional[_Union[Call, _Mapping]] = ...) -> None: ...

class EndCallRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class EndCallResponse(_message.Message):
    __slots__ = ("call",)
    CALL_FIELD_NUMBER: _ClassVar[int]
    call: Call
    def __init__(self, call: _Optional[_Union[Call, _Mapping]] = ...) -> None: ...

class SendSignalRequest(_message.Message):
    __slots__ = ("call", "signal")
    CALL_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    call: str
    signal: Signal
    def __init__(self, call: _Optional[str] = ..., signal: _Optional[_Union[Signal, _Mapping]] = ...) -> None: ...

class SendSignalResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StreamSignalsRequest(_message.Message):
    __slots__ = ("call", "after_cursor")
    CALL_FIELD_NUMBER: _ClassVar[int]
    AFTER_CURSOR_FIELD_NUMBER: _ClassVar[int]
    call: str
    after_cursor: str
    def __init__(self, call: _Optional[str] = ..., after_cursor: _Optional[str] = ...) -> None: ...

class StreamSignalsResponse(_message.Message):
    __slots__ = ("cursor", "call", "signal", "keepalive")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    KEEPALIVE_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    call: Call
    signal: Signal
    keepalive: Keepalive
    def __init__(self, cursor: _Optional[str] = ..., call: _Optional[_Union[Call, _Mapping]] = ..., signal: _Optional[_Union[Signal, _Mapping]] = ..., keepalive: _Optional[_Union[Keepalive, _Mapping]] = ...) -> None: ...

class GetTurnCredentialsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetTurnCredentialsResponse(_message.Message):
    __slots__ = ("ice_servers", "expire_time", "ttl")
    ICE_SERVERS_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    ice_servers: _containers.RepeatedCompositeFieldContainer[IceServer]
    expire_time: _timestamp_pb2.Timestamp
    ttl: _duration_pb2.Duration
    def __init__(self, ice_servers: _Optional[_Iterable[_Union[IceServer, _Mapping]]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
