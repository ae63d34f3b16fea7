import datetime

from buf.validate import validate_pb2 as _validate_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from zynk.messaging.v1 import messaging_pb2 as _messaging_pb2
from zynk.presence.v1 import presence_pb2 as _presence_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClientFrame(_message.Message):
    __slots__ = ("id", "auth", "call", "ack", "send", "read", "typing", "watch", "ping")
    ID_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    SEND_FIELD_NUMBER: _ClassVar[int]
    READ_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    WATCH_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    id: str
    auth: Authenticate
    call: Call
    ack: Acknowledge
    send: _messaging_pb2.SendMessageRequest
    read: _messaging_pb2.MarkReadRequest
    typing: _presence_pb2.SetTypingRequest
    watch: _presence_pb2.WatchPresenceRequest
    ping: Ping
    def __init__(self, id: _Optional[str] = ..., auth: _Optional[_Union[Authenticate, _Mapping]] = ..., call: _Optional[_Union[Call, _Mapping]] = ..., ack: _Optional[_Union[Acknowledge, _Mapping]] = ..., send: _Optional[_Union[_messaging_pb2.SendMessageRequest, _Mapping]] = ..., read: _Optional[_Union[_messaging_pb2.MarkReadRequest, _Mapping]] = ..., typing: _Optional[_Union[_presence_pb2.SetTypingRequest, _Mapping]] = ..., watch: _Optional[_Union[_presence_pb2.WatchPresenceRequest, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ...) -> None: ...

class Authenticate(_message.Message):
    __slots__ = ("access_token", "after_cursor")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AFTER_CURSOR_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    after_cursor: str
    def __init__(self, access_token: _Optional[str] = ..., after_cursor: _Optional[str] = ...) -> None: ...

class Call(_message.Message):
    __slots__ = ("method", "request")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    method: str
    request: _struct_pb2.Struct
    def __init__(self, method: _Optional[str] = ..., request: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Acknowledge(_message.Message):
    __slots__ = ("cursor",)
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    def __init__(self, cursor: _Optional[str] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerFrame(_message.Message):
    __slots__ = ("id", "ready", "inbox", "presence", "result", "error", "pong")
    ID_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    INBOX_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    id: str
    ready: Ready
    inbox: _messaging_pb2.SubscribeResponse
    presence: _presence_pb2.WatchPresenceResponse
    result: _struct_pb2.Struct
    error: _status_pb2.Status
    pong: Pong
    def __init__(self, id: _Optional[str] = ..., ready: _Optional[_Union[Ready, _Mapping]] = ..., inbox: _Optional[_Union[_messaging_pb2.SubscribeResponse, _Mapping]] = ..., presence: _Optional[_Union[_presence_pb2.WatchPresenceResponse, _Mapping]] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ...) -> None: ...

class Ready(_message.Message):
    __slots__ = ("device", "heartbeat_interval", "access_token_expire_time")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    ACCESS_TOKEN_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    device: str
    heartbeat_interval: _duration_pb2.Duration
    access_token_expire_time: _timestamp_pb2.Timestamp
    def __init__(self, device: _Optional[str] = ..., heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., access_token_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Pong(_message.Message):
    __slots__ = ("server_time",)
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    server_time: _timestamp_pb2.Timestamp
    def __init__(self, server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
