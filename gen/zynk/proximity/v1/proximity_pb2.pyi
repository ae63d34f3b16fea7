import datetime

from buf.validate import validate_pb2 as _validate_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DiscoverySession(_message.Message):
    __slots__ = ("handle", "display_hint", "expire_time")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_HINT_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    handle: str
    display_hint: str
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, handle: _Optional[str] = ..., display_hint: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NearbyPeer(_message.Message):
    __slots__ = ("handle", "display_hint", "same_cell", "update_time")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_HINT_FIELD_NUMBER: _ClassVar[int]
    SAME_CELL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    handle: str
    display_hint: str
    same_cell: bool
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, handle: _Optional[str] = ..., display_hint: _Optional[str] = ..., same_cell: _Optional[bool] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EnableDiscoveryRequest(_message.Message):
    __slots__ = ("ttl", "display_hint")
    TTL_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_HINT_FIELD_NUMBER: _ClassVar[int]
    ttl: _duration_pb2.Duration
    display_hint: str
    def __init__(self, ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., display_hint: _Optional[str] = ...) -> None: ...

class EnableDiscoveryResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: DiscoverySession
    def __init__(self, session: _Optional[_Union[DiscoverySession, _Mapping]] = ...) -> None: ...

class DisableDiscoveryRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DisableDiscoveryResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UpdateLocationRequest(_message.Message):
    __slots__ = ("cell",)
    CELL_FIELD_NUMBER: _ClassVar[int]
    cell: str
    def __init__(self, cell: _Optional[str] = ...) -> None: ...

class UpdateLocationResponse(_message.Message):
    __slots__ = ("expire_time",)
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListNearbyRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListNearbyResponse(_message.Message):
    __slots__ = ("peers", "next_page_token")
    PEERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    peers: _containers.RepeatedCompositeFieldContainer[NearbyPeer]
    next_page_token: str
    def __init__(self, peers: _Optional[_Iterable[_Union[NearbyPeer, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
