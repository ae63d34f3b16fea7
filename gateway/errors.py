"""gRPC status -> HTTP status, and error bodies as google.rpc.Status JSON (AIP-193).

Every error the gateway sends -- upstream or its own -- has the same body:
`{"code": <grpc code int>, "message": "...", "details": [{"@type": "...", ...}]}`.
Upstream rich details come from the `grpc-status-details-bin` trailer. Errors the gateway
originates carry an ErrorInfo with domain "zynk.dev" and an UPPER_SNAKE reason (plus a BadRequest
when one field is to blame). Upstream messages of internal-class errors are replaced by a generic
text (the original is logged), so stack traces, exception texts and peer addresses never leak.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2


__all__ = [
    "DETAILS_TRAILER",
    "ERROR_DOMAIN",
    "HTTP_STATUS",
    "HttpError",
    "from_rpc_error",
    "gateway_error",
    "http_status",
    "status_json",
]

ERROR_DOMAIN = "zynk.dev"
DETAILS_TRAILER = "grpc-status-details-bin"

C = grpc.StatusCode
HTTP_STATUS: Mapping[grpc.StatusCode, int] = {
    C.OK: 200,
    C.INVALID_ARGUMENT: 400,
    C.FAILED_PRECONDITION: 400,
    C.UNAUTHENTICATED: 401,
    C.PERMISSION_DENIED: 403,
    C.NOT_FOUND: 404,
    C.ALREADY_EXISTS: 409,
    C.ABORTED: 409,
    C.RESOURCE_EXHAUSTED: 429,
    C.CANCELLED: 499,
    C.UNIMPLEMENTED: 501,
    C.UNAVAILABLE: 503,
    C.DEADLINE_EXCEEDED: 504,
}

# Messages that grpc itself produces for these codes can name peers or internals.
_GENERIC_MESSAGE = {
    C.UNAVAILABLE: "the service is unavailable; try again later",
    C.DEADLINE_EXCEEDED: "the service did not answer in time",
    C.CANCELLED: "the request was cancelled",
}
_INTERNAL_MESSAGE = "internal error"


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status for a gRPC code (500 for anything not in the table)."""
    return HTTP_STATUS.get(code, 500)


@dataclass(slots=True)
class HttpError:
    """An error response: HTTP status, the google.rpc.Status body, extra headers."""

    http_status: int
    status: status_pb2.Status
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        text = json.dumps(status_json(self.status), ensure_ascii=False, separators=(",", ":"))
        return text.encode()


def status_json(status: status_pb2.Status) -> dict[str, Any]:
    """google.rpc.Status in proto3 JSON, always with code, message and details keys.

    A detail whose type the gateway cannot resolve is dropped rather than failing the response.
    """
    details = []
    for any_msg in status.details:
        try:
            details.append(json_format.MessageToDict(any_msg))
        except (TypeError, KeyError, json_format.Error):
            continue
    return {"code": status.code, "message": status.message, "details": details}


def gateway_error(
    http: int,
    code: grpc.StatusCode,
    reason: str,
    message: str,
    *,
    field: str | None = None,
    metadata: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> HttpError:
    """An error the gateway itself originates (bad input, unknown route, ...)."""
    status = status_pb2.Status(code=code.value[0], message=message)
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata or {})
    status.details.add().Pack(info)
    if field:
        bad = error_details_pb2.BadRequest()
        bad.field_violations.add(field=field, description=message)
        status.details.add().Pack(bad)
    return HttpError(http, status, dict(headers or {}))


def from_rpc_error(err: grpc.RpcError) -> tuple[HttpError, str]:
    """Map an upstream error. Returns the response and the original message (for logging)."""
    code = err.code() if callable(getattr(err, "code", None)) else C.UNKNOWN
    if not isinstance(code, grpc.StatusCode):
        code = C.UNKNOWN
    original = (err.details() if callable(getattr(err, "details", None)) else None) or ""
    rich = _rich_status(_trailers(err))
    status = status_pb2.Status(code=code.value[0], message=original)
    if rich is not None:
        status.message = rich.message or original
        status.details.extend(rich.details)
    http = http_status(code)
    if http == 500:
        status.message = _INTERNAL_MESSAGE
    elif code in _GENERIC_MESSAGE and rich is None:
        status.message = _GENERIC_MESSAGE[code]
    headers: dict[str, str] = {}
    if http in (429, 503):
        delay = _retry_after(status)
        if delay is not None:
            headers["retry-after"] = str(delay)
    return HttpError(http, status, headers), original


def _trailers(err: grpc.RpcError) -> Iterable[tuple[str, Any]]:
    getter = getattr(err, "trailing_metadata", None)
    if not callable(getter):
        return ()
    try:
        return getter() or ()
    except Exception:  # noqa: BLE001 -- a broken trailer must not turn into a 500
        return ()


def _rich_status(trailers: Iterable[tuple[str, Any]]) -> status_pb2.Status | None:
    for key, value in trailers:
        if key == DETAILS_TRAILER and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None
    return None


def _retry_after(status: status_pb2.Status) -> int | None:
    for any_msg in status.details:
        if any_msg.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            any_msg.Unpack(info)
            seconds = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
            return max(0, math.ceil(seconds))
    return None
