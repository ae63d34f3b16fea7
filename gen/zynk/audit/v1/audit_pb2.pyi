import datetime

from buf.validate import validate_pb2 as _validate_pb2
from google.api import annotations_pb2 as _annotations_pb2
from zynk.api.v1 import annotations_pb2 as _annotations_pb2_1
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import resource_pb2 as _resource_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
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

class VerificationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERIFICATION_STATUS_UNSPECIFIED: _ClassVar[VerificationStatus]
    VERIFICATION_STATUS_PENDING: _ClassVar[VerificationStatus]
    VERIFICATION_STATUS_ANCHORING: _ClassVar[VerificationStatus]
    VERIFICATION_STATUS_VERIFIED: _ClassVar[VerificationStatus]
    VERIFICATION_STATUS_MISMATCH: _ClassVar[VerificationStatus]
ANCHOR_STATUS_UNSPECIFIED: AnchorStatus
ANCHOR_STATUS_PENDING: AnchorStatus
ANCHOR_STATUS_CONFIRMED: AnchorStatus
ANCHOR_STATUS_FAILED: AnchorStatus
VERIFICATION_STATUS_UNSPECIFIED: VerificationStatus
VERIFICATION_STATUS_PENDING: VerificationStatus
VERIFICATION_STATUS_ANCHORING: VerificationStatus
VERIFICATION_STATUS_VERIFIED: VerificationStatus
VERIFICATION_STATUS_MISMATCH: VerificationStatus

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

class Batch(_message.Message):
    __slots__ = ("name", "root_hash", "tree_size", "seal_time", "anchor")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEAL_TIME_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    root_hash: bytes
    tree_size: int
    seal_time: _timestamp_pb2.Timestamp
    anchor: ChainAnchor
    def __init__(self, name: _Optional[str] = ..., root_hash: _Optional[bytes] = ..., tree_size: _Optional[int] = ..., seal_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., anchor: _Optional[_Union[ChainAnchor, _Mapping]] = ...) -> None: ...

class InclusionProof(_message.Message):
    __slots__ = ("message_id", "leaf_hash", "leaf_index", "tree_size", "audit_path", "root_hash", "batch", "anchor")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    LEAF_HASH_FIELD_NUMBER: _ClassVar[int]
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    AUDIT_PATH_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    leaf_hash: bytes
    leaf_index: int
    tree_size: int
    audit_path: _containers.RepeatedScalarFieldContainer[bytes]
    root_hash: bytes
    batch: str
    anchor: ChainAnchor
    def __init__(self, message_id: _Optional[str] = ..., leaf_hash: _Optional[bytes] = ..., leaf_index: _Optional[int] = ..., tree_size: _Optional[int] = ..., audit_path: _Optional[_Iterable[bytes]] = ..., root_hash: _Optional[bytes] = ..., batch: _Optional[str] = ..., anchor: _Optional[_Union[ChainAnchor, _Mapping]] = ...) -> None: ...

class AnchorBatchRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AnchorBatchResponse(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: Batch
    def __init__(self, batch: _Optional[_Union[Batch, _Mapping]] = ...) -> None: ...

class VerifyMessageRequest(_message.Message):
    __slots__ = ("message_id", "content_hash")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    content_hash: bytes
    def __init__(self, message_id: _Optional[str] = ..., content_hash: _Optional[bytes] = ...) -> None: ...

class VerifyMessageResponse(_message.Message):
    __slots__ = ("verified", "status", "proof")
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    verified: bool
    status: VerificationStatus
    proof: InclusionProof
    def __init__(self, verified: _Optional[bool] = ..., status: _Optional[_Union[VerificationStatus, str]] = ..., proof: _Optional[_Union[InclusionProof, _Mapping]] = ...) -> None: ...

class GetInclusionProofRequest(_message.Message):
    __slots__ = ("message_id",)
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    def __init__(self, message_id: _Optional[str] = ...) -> None: ...

class GetInclusionProofResponse(_message.Message):
    __slots__ = ("proof",)
    PROOF_FIELD_NUMBER: _ClassVar[int]
    proof: InclusionProof
    def __init__(self, proof: _Optional[_Union[InclusionProof, _Mapping]] = ...) -> None: ...

class GetBatchRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetBatchResponse(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: Batch
    def __init__(self, batch: _Optional[_Union[Batch, _Mapping]] = ...) -> None: ...

class ListBatchesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBatchesResponse(_message.Message):
    __slots__ = ("batches", "next_page_token")
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    batches: _containers.RepeatedCompositeFieldContainer[Batch]
    next_page_token: str
    def __init__(self, batches: _Optional[_Iterable[_Union[Batch, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
