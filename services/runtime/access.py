"""Per-method policy read once from the contracts: who may call (the `zynk.api.v1.access`
method option) and whether the request has buf.validate rules to check. Nothing else in
the code base decides which RPCs are public."""

from __future__ import annotations

import dataclasses
import enum
import functools

from google.protobuf import descriptor_pool
from zynk.api.v1 import annotations_pb2


class Access(enum.Enum):
    AUTHENTICATED = annotations_pb2.ACCESS_UNSPECIFIED
    PUBLIC = annotations_pb2.ACCESS_PUBLIC
    INTERNAL = annotations_pb2.ACCESS_INTERNAL
    ADMIN = annotations_pb2.ACCESS_ADMIN
    # No token on the call: each request item carries its device's token, which the service
    # verifies with the interceptor's verifier (context.item_verifier) before acting.
    PER_ITEM = annotations_pb2.ACCESS_PER_ITEM


@dataclasses.dataclass(frozen=True, slots=True)
class MethodPolicy:
    full_method: str
    access: Access
    # Only Zynk's own contracts carry buf.validate rules we must enforce. PER_ITEM methods
    # validate each item themselves: one bad item must not end a stream shared by many.
    validate: bool




@functools.lru_cache(maxsize=4096)
def policy_for(full_method: str) -> MethodPolicy:
    """`full_method` is gRPC's `/package.Service/Method`."""
    service_name, _, method_name = full_method.lstrip("/").rpartition("/")
    try:
        service = descriptor_pool.Default().FindServiceByName(service_name)
    except (KeyError, ValueError):
        service = None
    method = service.methods_by_name.get(method_name) if service else None
    if method is None or not service_name.startswith("zynk."):
        # Infrastructure services (health, reflection) are not Zynk contracts: public.
        return MethodPolicy(full_method, Access.PUBLIC, validate=False)
    opts = method.GetOptions()
    value = opts.Extensions[annotations_pb2.access] if opts.HasExtension(
        annotations_pb2.access) else annotations_pb2.ACCESS_UNSPECIFIED
    access = Access(value)
    return MethodPolicy(full_method, access, validate=access is not Access.PER_ITEM)


def methods_with_access(service_full_name: str, access: Access) -> list[str]:
    service = descriptor_pool.Default().FindServiceByName(service_full_name)
    return [m.name for m in service.methods
            if policy_for(f"/{service_full_name}/{m.name}").access is access]
