"""The socket's frames: text -> validated ClientFrame, and ServerFrames -> text.

Every message is the proto3 JSON of one frame (proto/zynk/realtime/v1/realtime.proto).
Client frames go through the REST gateway's own JSON path (duplicate keys refused,
google.protobuf.json_format, the same error reasons) and then the runtime's protovalidate
check, so a frame is held to exactly the rules of the messages it carries. Server frames are
written as `{"id": ..., "<kind>": <payload JSON>}` with the payload rendered by json_format
and the envelope by hand: that is the proto3 JSON of a ServerFrame (tests parse every frame
back with json_format to hold this true), one json.dumps per frame.
"""

from __future__ import annotations

import json
import re
from typing import Any

import grpc
from google.protobuf import json_format, timestamp_pb2
from google.rpc import status_pb2
from zynk.realtime.v1 import realtime_pb2

from gateway.errors import gateway_error, http_status, status_json
from gateway.transcode import TranscodeError, loads_strict, parse_into
from services.runtime.errors import InvalidArgument
from services.runtime.interceptors import violations_of

__all__ = [
    "FrameError",
    "error",
    "error_status",
    "inbox",
    "parse",
    "pong",
    "presence",
    "ready",
    "result",
]

C = grpc.StatusCode
_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_to_dict = json_format.MessageToDict


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class FrameError(Exception):
    """A client frame the server cannot accept; answered by an `error` frame."""

    def __init__(self, status: dict[str, Any], frame_id: str = "") -> None:
        super().__init__(status.get("message", ""))
        self.status = status
        self.frame_id = frame_id


def error_status(code: grpc.StatusCode, reason: str, message: str, *,
                 field: str | None = None, metadata: dict[str, str] | None = None
                 ) -> dict[str, Any]:
    """A gateway-originated google.rpc.Status, in the JSON REST errors use."""
    err = gateway_error(http_status(code), code, reason, message, field=field, metadata=metadata)
    return status_json(err.status)


def parse(text: str) -> tuple[realtime_pb2.ClientFrame, dict[str, Any]]:
    """The validated ClientFrame and the decoded JSON it came from (whose `call.request`
    is parsed again against the called method's own request type)."""
    try:
        data = loads_strict(text, "frame")
    except TranscodeError as e:
        raise FrameError(error_status(C.INVALID_ARGUMENT, e.reason, e.message)) from None
    if not isinstance(data, dict):
        raise FrameError(error_status(C.INVALID_ARGUMENT, "INVALID_FRAME",
                                      "a frame must be a JSON object"))
    given = data.get("id")
    frame_id = given if isinstance(given, str) and _ID.fullmatch(given) else ""
    frame = realtime_pb2.ClientFrame()
    try:
        parse_into(data, frame)
    except TranscodeError as e:
        raise FrameError(error_status(C.INVALID_ARGUMENT, e.reason, e.message, field=e.field),
                         frame_id) from None
    violations = violations_of(frame)
    if violations:
        summary = "; ".join(f"{f}: {d}" for f, d in violations)
        status = InvalidArgument(f"invalid frame: {summary}", field_violations=violations,
                                 reason="VALIDATION_FAILED").to_status()
        raise FrameError(status_json(status), frame_id)
    return frame, data


# -- server frames -------------------------------------------------------------------------


def inbox(response: Any) -> str:
    return '{"inbox":' + _dumps(_to_dict(response)) + "}"


def presence(response: Any) -> str:
    return '{"presence":' + _dumps(_to_dict(response)) + "}"


def result(frame_id: str, response: Any) -> str:
    return _dumps({"id": frame_id, "result": _to_dict(response)})


def error(frame_id: str, status: dict[str, Any] | status_pb2.Status) -> str:
    if isinstance(status, status_pb2.Status):
        status = status_json(status)
    if frame_id:
        return _dumps({"id": frame_id, "error": status})
    return _dumps({"error": status})


def pong(frame_id: str) -> str:
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    body = '{"pong":{"serverTime":"' + now.ToJsonString() + '"}}'
    return '{"id":' + _dumps(frame_id) + "," + body[1:] if frame_id else body


def ready(frame_id: str, device: str, heartbeat_interval_s: float, expire_time: float) -> str:
    msg = realtime_pb2.Ready(device=device)
    msg.heartbeat_interval.FromNanoseconds(int(heartbeat_interval_s * 1e9))
    msg.access_token_expire_time.FromSeconds(int(expire_time))
    frame = {"ready": _to_dict(msg)}
    if frame_id:
        frame = {"id": frame_id, **frame}
    return _dumps(frame)
