from buf.validate import validate_pb2 as _validate_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from zynk.api.v1 import annotations_pb2 as _annotations_pb2_1
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UserResult(_message.Message):
    __slots__ = ("user", "username", "display_name")
    USER_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    user: str
    username: str
    display_name: str
    def __init__(self, user: _Optional[str] = ..., username: _Optional[str] = ..., display_name: _Optional[str] = ...) -> None: ...

class GroupResult(_message.Message):
    __slots__ = ("group", "display_name", "description", "member_count", "caller_is_member")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MEMBER_COUNT_FIELD_NUMBER: _ClassVar[int]
    CALLER_IS_MEMBER_FIELD_NUMBER: _ClassVar[int]
    group: str
    display_name: str
    description: str
    member_count: int
    caller_is_member: bool
    def __init__(self, group: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., member_count: _Optional[int] = ..., caller_is_member: _Optional[bool] = ...) -> None: ...

class SearchUsersRequest(_message.Message):
    __slots__ = ("query", "page_size", "page_token")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    query: str
    page_size: int
    page_token: str
    def __init__(self, query: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchUsersResponse(_message.Message):
    __slots__ = ("results", "next_page_token")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[UserResult]
    next_page_token: str
    def __init__(self, results: _Optional[_Iterable[_Union[UserResult, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SearchGroupsRequest(_message.Message):
    __slots__ = ("query", "page_size", "page_token")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    query: str
    page_size: int
    page_token: str
    def __init__(self, query: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchGroupsResponse(_message.Message):
    __slots__ = ("results", "next_page_token")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[GroupResult]
    next_page_token: str
    def __init__(self, results: _Optional[_Iterable[_Union[GroupResult, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class IndexUserRequest(_message.Message):
    __slots__ = ("user", "username", "display_name", "deleted", "version")
    USER_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    user: str
    username: str
    display_name: str
    deleted: bool
    version: int
    def __init__(self, user: _Optional[str] = ..., username: _Optional[str] = ..., display_name: _Optional[str] = ..., deleted: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class IndexUserResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IndexGroupRequest(_message.Message):
    __slots__ = ("group", "display_name", "description", "discoverable", "members", "deleted", "version")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DISCOVERABLE_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    group: str
    display_name: str
    description: str
    discoverable: bool
    members: _containers.RepeatedScalarFieldContainer[str]
    deleted: bool
    version: int
    def __init__(self, group: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., discoverable: _Optional[bool] = ..., members: _Optional[_Iterable[str]] = ..., deleted: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class IndexGroupResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
