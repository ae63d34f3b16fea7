"""Reading a failed call: the google.rpc.Status every service puts in the trailers
(grpc-status-details-bin), its ErrorInfo and its BadRequest field violations."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2


def rich_status(err: grpc.aio.AioRpcError) -> status_pb2.Status:
    """The google.rpc.Status in the trailers; its code must be the call's."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            assert status.code == err.code().value[0], (status.code, err.code())
            return status
    raise AssertionError("no google.rpc.Status in the trailers")


def error_info(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    for d in rich_status(err).details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo in the status")


def error_details(err: grpc.aio.AioRpcError) -> tuple[str, list[tuple[str, str]]]:
    """(ErrorInfo.reason, BadRequest field violations as (field, description))."""
    reason, violations = "", []
    for d in rich_status(err).details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            reason = info.reason
        elif d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            d.Unpack(br)
            violations = [(v.field, v.description) for v in br.field_violations]
    return reason, violations


async def fails(call, code: grpc.StatusCode, reason: str | None = None) -> grpc.aio.AioRpcError:
    """Await `call`, expecting it to fail with `code` (and ErrorInfo `reason`, if given)."""
    try:
        await call
    except grpc.aio.AioRpcError as e:
        assert e.code() == code, (e.code(), e.details())
        if reason is not None:
            assert error_info(e).reason == reason, (error_info(e), e.details())
        return e
    raise AssertionError(f"expected {code.name}, the call succeeded")
