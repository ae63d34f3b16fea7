import datetime

from buf.validate import validate_pb2 as _validate_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import resource_pb2 as _resource_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from zynk.api.v1 import annotations_pb2 as _annotations_pb2_1
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Provider(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROVIDER_UNSPECIFIED: _ClassVar[Provider]
    PROVIDER_FCM: _ClassVar[Provider]
    PROVIDER_APNS: _ClassVar[Provider]
    PROVIDER_APNS_VOIP: _ClassVar[Provider]

class NotificationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOTIFICATION_KIND_UNSPECIFIED: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_MESSAGE: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_CALL: _ClassVar[NotificationKind]
PROVIDER_UNSPECIFIED: Provider
PROVIDER_FCM: Provider
PROVIDER_APNS: Provider
PROVIDER_APNS_VOIP: Provider
NOTIFICATION_KIND_UNSPECIFIED: NotificationKind
NOTIFICATION_KIND_MESSAGE: NotificationKind
NOTIFICATION_KIND_CALL: NotificationKind

class WebPushSubscription(_message.Message):
    __slots__ = ("endpoint", "p256dh", "auth")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    P256DH_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    endpoint: str
    p256dh: bytes
    auth: bytes
    def __init__(self, endpoint: _Optional[str] = ..., p256dh: _Optional[bytes] = ..., auth: _Optional[bytes] = ...) -> None: ...

class ProviderToken(_message.Message):
    __slots__ = ("provider", "token", "app_id", "sandbox")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    provider: Provider
    token: str
    app_id: str
    sandbox: bool
    def __init__(self, provider: _Optional[_Union[Provider, str]] = ..., token: _Optional[str] = ..., app_id: _Optional[str] = ..., sandbox: _Optional[bool] = ...) -> None: ...

class PushTarget(_message.Message):
    __slots__ = ("name", "web_push", "provider_token", "create_time", "update_time", "last_success_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WEB_PUSH_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SUCCESS_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    web_push: WebPushSubscription
    provider_token: ProviderToken
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    last_success_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., web_push: _Optional[_Union[WebPushSubscription, _Mapping]] = ..., provider_token: _Optional[_Union[ProviderToken, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_success_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NotificationSettings(_message.Message):
    __slots__ = ("name", "mute_until", "calls_bypass_mute", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MUTE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    CALLS_BYPASS_MUTE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    mute_until: _timestamp_pb2.Timestamp
    calls_bypass_mute: bool
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., mute_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., calls_bypass_mute: _Optional[bool] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ConversationMute(_message.Message):
    __slots__ = ("name", "conversation", "mute_until")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    MUTE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    conversation: str
    mute_until: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., conversation: _Optional[str] = ..., mute_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeviceResult(_message.Message):
    __slots__ = ("device", "outcome")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[DeviceResult.Outcome]
        OUTCOME_SENT: _ClassVar[DeviceResult.Outcome]
        OUTCOME_MUTED: _ClassVar[DeviceResult.Outcome]
        OUTCOME_NO_TARGET: _ClassVar[DeviceResult.Outcome]
        OUTCOME_FAILED: _ClassVar[DeviceResult.Outcome]
    OUTCOME_UNSPECIFIED: DeviceResult.Outcome
    OUTCOME_SENT: DeviceResult.Outcome
    OUTCOME_MUTED: DeviceResult.Outcome
    OUTCOME_NO_TARGET: DeviceResult.Outcome
    OUTCOME_FAILED: DeviceResult.Outcome
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    device: str
    outcome: DeviceResult.Outcome
    def __init__(self, device: _Optional[str] = ..., outcome: _Optional[_Union[DeviceResult.Outcome, str]] = ...) -> None: ...

class CreatePushTargetRequest(_message.Message):
    __slots__ = ("parent", "push_target")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PUSH_TARGET_FIELD_NUMBER: _ClassVar[int]
    parent: str
    push_target: PushTarget
    def __init__(self, parent: _Optional[str] = ..., push_target: _Optional[_Union[PushTarget, _Mapping]] = ...) -> None: ...

class CreatePushTargetResponse(_message.Message):
    __slots__ = ("push_target",)
    PUSH_TARGET_FIELD_NUMBER: _ClassVar[int]
    push_target: PushTarget
    def __init__(self, push_target: _Optional[_Union[PushTarget, _Mapping]] = ...) -> None: ...

class ListPushTargetsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPushTargetsResponse(_message.Message):
    __slots__ = ("push_targets", "next_page_token")
    PUSH_TARGETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    push_targets: _containers.RepeatedCompositeFieldContainer[PushTarget]
    next_page_token: str
    def __init__(self, push_targets: _Optional[_Iterable[_Union[PushTarget, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeletePushTargetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeletePushTargetResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetWebPushConfigRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetWebPushConfigResponse(_message.Message):
    __slots__ = ("application_server_key",)
    APPLICATION_SERVER_KEY_FIELD_NUMBER: _ClassVar[int]
    application_server_key: str
    def __init__(self, application_server_key: _Optional[str] = ...) -> None: ...

class GetNotificationSettingsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetNotificationSettingsResponse(_message.Message):
    __slots__ = ("notification_settings",)
    NOTIFICATION_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    notification_settings: NotificationSettings
    def __init__(self, notification_settings: _Optional[_Union[NotificationSettings, _Mapping]] = ...) -> None: ...

class UpdateNotificationSettingsRequest(_message.Message):
    __slots__ = ("notification_settings", "update_mask")
    NOTIFICATION_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    notification_settings: NotificationSettings
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, notification_settings: _Optional[_Union[NotificationSettings, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateNotificationSettingsResponse(_message.Message):
    __slots__ = ("notification_settings",)
    NOTIFICATION_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    notification_settings: NotificationSettings
    def __init__(self, notification_settings: _Optional[_Union[NotificationSettings, _Mapping]] = ...) -> None: ...

class MuteConversationRequest(_message.Message):
    __slots__ = ("conversation", "mute_until")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    MUTE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    mute_until: _timestamp_pb2.Timestamp
    def __init__(self, conversation: _Optional[str] = ..., mute_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MuteConversationResponse(_message.Message):
    __slots__ = ("conversation_mute",)
    CONVERSATION_MUTE_FIELD_NUMBER: _ClassVar[int]
    conversation_mute: ConversationMute
    def __init__(self, conversation_mute: _Optional[_Union[ConversationMute, _Mapping]] = ...) -> None: ...

class UnmuteConversationRequest(_message.Message):
    __slots__ = ("conversation",)
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    def __init__(self, conversation: _Optional[str] = ...) -> None: ...

class UnmuteConversationResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListConversationMutesRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListConversationMutesResponse(_message.Message):
    __slots__ = ("conversation_mutes", "next_page_token")
    CONVERSATION_MUTES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    conversation_mutes: _containers.RepeatedCompositeFieldContainer[ConversationMute]
    next_page_token: str
    def __init__(self, conversation_mutes: _Optional[_Iterable[_Union[ConversationMute, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class NotifyDevicesRequest(_message.Message):
    __slots__ = ("notification_id", "devices", "kind", "conversation", "ttl")
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    notification_id: str
    devices: _containers.RepeatedScalarFieldContainer[str]
    kind: NotificationKind
    conversation: str
    ttl: _duration_pb2.Duration
    def __init__(self, notification_id: _Optional[str] = ..., devices: _Optional[_Iterable[str]] = ..., kind: _Optional[_Union[NotificationKind, str]] = ..., conversation: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class NotifyDevicesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[DeviceResult]
    def __init__(self, results: _Optional[_Iterable[_Union[DeviceResult, _Mapping]]] = ...) -> None: ...
