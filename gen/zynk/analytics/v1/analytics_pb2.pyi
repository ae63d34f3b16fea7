import datetime

from buf.validate import validate_pb2 as _validate_pb2
from google.api import annotations_pb2 as _annotations_pb2
from zynk.api.v1 import annotations_pb2 as _annotations_pb2_1
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TimeBucket(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIME_BUCKET_UNSPECIFIED: _ClassVar[TimeBucket]
    TIME_BUCKET_HOUR: _ClassVar[TimeBucket]
    TIME_BUCKET_DAY: _ClassVar[TimeBucket]
TIME_BUCKET_UNSPECIFIED: TimeBucket
TIME_BUCKET_HOUR: TimeBucket
TIME_BUCKET_DAY: TimeBucket

class TimeRange(_message.Message):
    __slots__ = ("start_time", "end_time", "bucket")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    bucket: TimeBucket
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bucket: _Optional[_Union[TimeBucket, str]] = ...) -> None: ...

class ActiveUsersPoint(_message.Message):
    __slots__ = ("start_time", "active_users", "new_users")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_USERS_FIELD_NUMBER: _ClassVar[int]
    NEW_USERS_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    active_users: int
    new_users: int
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., active_users: _Optional[int] = ..., new_users: _Optional[int] = ...) -> None: ...

class MessageStatsPoint(_message.Message):
    __slots__ = ("start_time", "messages_sent", "direct_messages_sent", "group_messages_sent", "deliveries", "reads", "ciphertext_bytes")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_SENT_FIELD_NUMBER: _ClassVar[int]
    DIRECT_MESSAGES_SENT_FIELD_NUMBER: _ClassVar[int]
    GROUP_MESSAGES_SENT_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    READS_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_BYTES_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    messages_sent: int
    direct_messages_sent: int
    group_messages_sent: int
    deliveries: int
    reads: int
    ciphertext_bytes: int
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., messages_sent: _Optional[int] = ..., direct_messages_sent: _Optional[int] = ..., group_messages_sent: _Optional[int] = ..., deliveries: _Optional[int] = ..., reads: _Optional[int] = ..., ciphertext_bytes: _Optional[int] = ...) -> None: ...

class CallStatsPoint(_message.Message):
    __slots__ = ("start_time", "calls_initiated", "calls_ended", "audio_calls", "video_calls", "group_calls", "unanswered_calls", "total_duration")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    CALLS_INITIATED_FIELD_NUMBER: _ClassVar[int]
    CALLS_ENDED_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CALLS_FIELD_NUMBER: _ClassVar[int]
    VIDEO_CALLS_FIELD_NUMBER: _ClassVar[int]
    GROUP_CALLS_FIELD_NUMBER: _ClassVar[int]
    UNANSWERED_CALLS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_DURATION_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    calls_initiated: int
    calls_ended: int
    audio_calls: int
    video_calls: int
    group_calls: int
    unanswered_calls: int
    total_duration: _duration_pb2.Duration
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., calls_initiated: _Optional[int] = ..., calls_ended: _Optional[int] = ..., audio_calls: _Optional[int] = ..., video_calls: _Optional[int] = ..., group_calls: _Optional[int] = ..., unanswered_calls: _Optional[int] = ..., total_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetDailyActiveUsersRequest(_message.Message):
    __slots__ = ("range",)
    RANGE_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class GetDailyActiveUsersResponse(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[ActiveUsersPoint]
    def __init__(self, points: _Optional[_Iterable[_Union[ActiveUsersPoint, _Mapping]]] = ...) -> None: ...

class GetMessageStatsRequest(_message.Message):
    __slots__ = ("range",)
    RANGE_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class GetMessageStatsResponse(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[MessageStatsPoint]
    def __init__(self, points: _Optional[_Iterable[_Union[MessageStatsPoint, _Mapping]]] = ...) -> None: ...

class GetCallStatsRequest(_message.Message):
    __slots__ = ("range",)
    RANGE_FIELD_NUMBER: _ClassVar[int]
    range: TimeRange
    def __init__(self, range: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class GetCallStatsResponse(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[CallStatsPoint]
    def __init__(self, points: _Optional[_Iterable[_Union[CallStatsPoint, _Mapping]]] = ...) -> None: ...
