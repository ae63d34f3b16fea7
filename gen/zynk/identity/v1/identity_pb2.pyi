import datetime

from buf.validate import validate_pb2 as _validate_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import resource_pb2 as _resource_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from zynk.api.v1 import annotations_pb2 as _annotations_pb2_1
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AnchorStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANCHOR_STATUS_UNSPECIFIED: _ClassVar[AnchorStatus]
    ANCHOR_STATUS_PENDING: _ClassVar[AnchorStatus]
    ANCHOR_STATUS_CONFIRMED: _ClassVar[AnchorStatus]
    ANCHOR_STATUS_FAILED: _ClassVar[AnchorStatus]

class CredentialType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CREDENTIAL_TYPE_UNSPECIFIED: _ClassVar[CredentialType]
    CREDENTIAL_TYPE_ACCOUNT_OWNERSHIP: _ClassVar[CredentialType]
    CREDENTIAL_TYPE_DEVICE_KEY: _ClassVar[CredentialType]

class VerificationResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERIFICATION_RESULT_UNSPECIFIED: _ClassVar[VerificationResult]
    VERIFICATION_RESULT_VERIFIED: _ClassVar[VerificationResult]
    VERIFICATION_RESULT_NOT_REGISTERED: _ClassVar[VerificationResult]
    VERIFICATION_RESULT_PENDING: _ClassVar[VerificationResult]
    VERIFICATION_RESULT_DEACTIVATED: _ClassVar[VerificationResult]
    VERIFICATION_RESULT_KEY_NOT_ANCHORED: _ClassVar[VerificationResult]
    VERIFICATION_RESULT_KEY_REVOKED: _ClassVar[VerificationResult]
ANCHOR_STATUS_UNSPECIFIED: AnchorStatus
ANCHOR_STATUS_PENDING: AnchorStatus
ANCHOR_STATUS_CONFIRMED: AnchorStatus
ANCHOR_STATUS_FAILED: AnchorStatus
CREDENTIAL_TYPE_UNSPECIFIED: CredentialType
CREDENTIAL_TYPE_ACCOUNT_OWNERSHIP: CredentialType
CREDENTIAL_TYPE_DEVICE_KEY: CredentialType
VERIFICATION_RESULT_UNSPECIFIED: VerificationResult
VERIFICATION_RESULT_VERIFIED: VerificationResult
VERIFICATION_RESULT_NOT_REGISTERED: VerificationResult
VERIFICATION_RESULT_PENDING: VerificationResult
VERIFICATION_RESULT_DEACTIVATED: VerificationResult
VERIFICATION_RESULT_KEY_NOT_ANCHORED: VerificationResult
VERIFICATION_RESULT_KEY_REVOKED: VerificationResult

class ChainAnchor(_message.Message):
    __slots__ = ("chain_id", "contract_address", "transaction_hash", "block_number", "block_time", "status")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_HASH_FIELD_NUMBER: _ClassVar[int]
    BLOCK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BLOCK_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    contract_address: str
    transaction_hash: str
    block_number: int
    block_time: _timestamp_pb2.Timestamp
    status: AnchorStatus
    def __init__(self, chain_id: _Optional[int] = ..., contract_address: _Optional[str] = ..., transaction_hash: _Optional[str] = ..., block_number: _Optional[int] = ..., block_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[AnchorStatus, str]] = ...) -> None: ...

class AnchoredKey(_message.Message):
    __slots__ = ("device", "public_key", "anchor", "revoke_time", "revoke_anchor")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVOKE_ANCHOR_FIELD_NUMBER: _ClassVar[int]
    device: str
    public_key: bytes
    anchor: ChainAnchor
    revoke_time: _timestamp_pb2.Timestamp
    revoke_anchor: ChainAnchor
    def __init__(self, device: _Optional[str] = ..., public_key: _Optional[bytes] = ..., anchor: _Optional[_Union[ChainAnchor, _Mapping]] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_anchor: _Optional[_Union[ChainAnchor, _Mapping]] = ...) -> None: ...

class Identity(_message.Message):
    __slots__ = ("did", "user", "state", "keys", "trust_score", "anchor", "create_time")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Identity.State]
        STATE_PENDING: _ClassVar[Identity.State]
        STATE_ACTIVE: _ClassVar[Identity.State]
        STATE_DEACTIVATED: _ClassVar[Identity.State]
    STATE_UNSPECIFIED: Identity.State
    STATE_PENDING: Identity.State
    STATE_ACTIVE: Identity.State
    STATE_DEACTIVATED: Identity.State
    DID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    TRUST_SCORE_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    did: str
    user: str
    state: Identity.State
    keys: _containers.RepeatedCompositeFieldContainer[AnchoredKey]
    trust_score: int
    anchor: ChainAnchor
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, did: _Optional[str] = ..., user: _Optional[str] = ..., state: _Optional[_Union[Identity.State, str]] = ..., keys: _Optional[_Iterable[_Union[AnchoredKey, _Mapping]]] = ..., trust_score: _Optional[int] = ..., anchor: _Optional[_Union[ChainAnchor, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TrustFactor(_message.Message):
    __slots__ = ("factor", "contribution")
    FACTOR_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    factor: str
    contribution: int
    def __init__(self, factor: _Optional[str] = ..., contribution: _Optional[int] = ...) -> None: ...

class TrustScore(_message.Message):
    __slots__ = ("did", "score", "factors", "update_time", "anchor")
    DID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    FACTORS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_FIELD_NUMBER: _ClassVar[int]
    did: str
    score: int
    factors: _containers.RepeatedCompositeFieldContainer[TrustFactor]
    update_time: _timestamp_pb2.Timestamp
    anchor: ChainAnchor
    def __init__(self, did: _Optional[str] = ..., score: _Optional[int] = ..., factors: _Optional[_Iterable[_Union[TrustFactor, _Mapping]]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., anchor: _Optional[_Union[ChainAnchor, _Mapping]] = ...) -> None: ...

class VerifiableCredential(_message.Message):
    __slots__ = ("id", "type", "issuer", "subject", "issue_time", "expire_time", "jwt", "credential_hash", "anchor")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ISSUE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    JWT_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_HASH_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: CredentialType
    issuer: str
    subject: str
    issue_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    jwt: str
    credential_hash: bytes
    anchor: ChainAnchor
    def __init__(self, id: _Optional[str] = ..., type: _Optional[_Union[CredentialType, str]] = ..., issuer: _Optional[str] = ..., subject: _Optional[str] = ..., issue_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., jwt: _Optional[str] = ..., credential_hash: _Optional[bytes] = ..., anchor: _Optional[_Union[ChainAnchor, _Mapping]] = ...) -> None: ...

class RegisterIdentityRequest(_message.Message):
    __slots__ = ("device", "identity_key", "signature")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    device: str
    identity_key: bytes
    signature: bytes
    def __init__(self, device: _Optional[str] = ..., identity_key: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class RegisterIdentityResponse(_message.Message):
    __slots__ = ("identity",)
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    identity: Identity
    def __init__(self, identity: _Optional[_Union[Identity, _Mapping]] = ...) -> None: ...

class ResolveIdentityRequest(_message.Message):
    __slots__ = ("did",)
    DID_FIELD_NUMBER: _ClassVar[int]
    did: str
    def __init__(self, did: _Optional[str] = ...) -> None: ...

class ResolveIdentityResponse(_message.Message):
    __slots__ = ("identity",)
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    identity: Identity
    def __init__(self, identity: _Optional[_Union[Identity, _Mapping]] = ...) -> None: ...

class VerifyIdentityRequest(_message.Message):
    __slots__ = ("did", "identity_key")
    DID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_KEY_FIELD_NUMBER: _ClassVar[int]
    did: str
    identity_key: bytes
    def __init__(self, did: _Optional[str] = ..., identity_key: _Optional[bytes] = ...) -> None: ...

class VerifyIdentityResponse(_message.Message):
    __slots__ = ("verified", "result", "identity", "matched_key")
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    MATCHED_KEY_FIELD_NUMBER: _ClassVar[int]
    verified: bool
    result: VerificationResult
    identity: Identity
    matched_key: AnchoredKey
    def __init__(self, verified: _Optional[bool] = ..., result: _Optional[_Union[VerificationResult, str]] = ..., identity: _Optional[_Union[Identity, _Mapping]] = ..., matched_key: _Optional[_Union[AnchoredKey, _Mapping]] = ...) -> None: ...

class GetTrustScoreRequest(_message.Message):
    __slots__ = ("did",)
    DID_FIELD_NUMBER: _ClassVar[int]
    did: str
    def __init__(self, did: _Optional[str] = ...) -> None: ...

class GetTrustScoreResponse(_message.Message):
    __slots__ = ("trust_score",)
    TRUST_SCORE_FIELD_NUMBER: _ClassVar[int]
    trust_score: TrustScore
    def __init__(self, trust_score: _Optional[_Union[TrustScore, _Mapping]] = ...) -> None: ...

class IssueCredentialRequest(_message.Message):
    __slots__ = ("did", "type", "device")
    DID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    did: str
    type: CredentialType
    device: str
    def __init__(self, did: _Optional[str] = ..., type: _Optional[_Union[CredentialType, str]] = ..., device: _Optional[str] = ...) -> None: ...

class IssueCredentialResponse(_message.Message):
    __slots__ = ("credential",)
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    credential: VerifiableCredential
    def __init__(self, credential: _Optional[_Union[VerifiableCredential, _Mapping]] = ...) -> None: ...

class RevokeDeviceKeyRequest(_message.Message):
    __slots__ = ("device", "revoke_time")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    device: str
    revoke_time: _timestamp_pb2.Timestamp
    def __init__(self, device: _Optional[str] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RevokeDeviceKeyResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: AnchoredKey
    def __init__(self, key: _Optional[_Union[AnchoredKey, _Mapping]] = ...) -> None: ...
