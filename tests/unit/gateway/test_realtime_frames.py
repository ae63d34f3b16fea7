"""The realtime socket's frame codec: client frames are held to the contract and its
validation rules; server frames are exactly the proto3 JSON of a ServerFrame."""

import json
import time
import uuid

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from zynk.messaging.v1 import messaging_pb2 as mpb
from zynk.presence.v1 import presence_pb2 as ppb
from zynk.realtime.v1 import realtime_pb2

from gateway.realtime import frames
from gateway.realtime.frames import FrameError


def server_frame(text: str) -> realtime_pb2.ServerFrame:
    """Parse strictly as a ServerFrame, and check the JSON is canonical proto3 JSON."""
    msg = json_format.Parse(text, realtime_pb2.ServerFrame())
    assert json.loads(text) == json_format.MessageToDict(msg)
    return msg


def test_parse_a_send_frame():
    mid = str(uuid.uuid4())
    text = json.dumps({"id": "s1", "send": {
        "parent": "conversations/c1", "messageId": mid,
        "pairwise": {"envelopes": [{"recipientDevice": "users/u/devices/d",
                                    "type": "ENVELOPE_TYPE_PREKEY", "ciphertext": "AAE="}]}}})
    frame, data = frames.parse(text)
    assert frame.id == "s1" and frame.WhichOneof("frame") == "send"
    assert frame.send.message_id == mid
    assert frame.send.pairwise.envelopes[0].ciphertext == b"\x00\x01"
    assert data["send"]["messageId"] == mid


@pytest.mark.parametrize("text, why, fid, field", [
    ("nope", "MALFORMED_JSON", "", None),
    ('"a string"', "INVALID_FRAME", "", None),
    ('{"id": "d", "ping": {}, "id": "e"}', "MALFORMED_JSON", "", None),
    ('{"id": "x", "bogus": {}}', "UNKNOWN_FIELD", "x", "bogus"),
    ('{"id": "x", "ack": {"cursor": 5}}', "INVALID_FIELD_VALUE", "x", None),
    ('{"id": "x"}', "VALIDATION_FAILED", "x", "frame"),  # the oneof: one frame is required
    ('{"id": "x", "ack": {"cursor": ""}}', "VALIDATION_FAILED", "x", "ack.cursor"),
    ('{"id": "' + "x" * 65 + '", "ping": {}}', "VALIDATION_FAILED", "", "id"),
    ('{"id": "x", "call": {"method": "NoSlash", "request": {}}}', "VALIDATION_FAILED", "x",
     "call.method"),
    ('{"id": "x", "watch": {"names": ["users/u"]}}', "VALIDATION_FAILED", "x", "watch.names[0]"),
])
def test_bad_frames(text, why, fid, field):
    with pytest.raises(FrameError) as info:
        frames.parse(text)
    err = info.value
    assert err.frame_id == fid
    assert err.status["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    details = err.status["details"]
    assert details[0]["reason"] == why and details[0]["domain"] == "zynk.dev"
    if field is not None:
        fields = [v["field"] for d in details for v in d.get("fieldViolations", [])]
        assert field in fields, fields
    # An error frame built from it is a valid ServerFrame.
    server_frame(frames.error(err.frame_id, err.status))


def test_ready():
    expire = time.time() + 900
    text = frames.ready("a1", "users/u/devices/d", 25, expire)
    msg = server_frame(text)
    assert msg.id == "a1"
    assert msg.ready.device == "users/u/devices/d"
    assert msg.ready.heartbeat_interval.seconds == 25
    assert msg.ready.access_token_expire_time.seconds == int(expire)
    assert "id" not in json.loads(frames.ready("", "users/u/devices/d", 0.5, expire))
    assert json.loads(frames.ready("", "d", 0.5, expire))["ready"]["heartbeatInterval"] == "0.500s"


def test_inbox_and_presence():
    entry = mpb.SubscribeResponse(cursor="7", message=mpb.Message(
        name="conversations/c/messages/m", sequence=2**62,
        envelope=mpb.Envelope(recipient_device="users/u/devices/d", type=2,
                              ciphertext=b"\xff")))
    msg = server_frame(frames.inbox(entry))
    assert msg.inbox == entry
    assert json.loads(frames.inbox(entry))["inbox"]["message"]["sequence"] == str(2**62)
    caught = server_frame(frames.inbox(mpb.SubscribeResponse(caught_up=mpb.CaughtUp())))
    assert caught.inbox.HasField("caught_up")
    change = ppb.WatchPresenceResponse(presence=ppb.Presence(name="users/u/presence", state=1))
    assert server_frame(frames.presence(change)).presence == change


def test_result_error_pong():
    msg = server_frame(frames.result("r", mpb.MarkReadResponse(read_sequence=3)))
    assert msg.id == "r" and dict(msg.result) == {"readSequence": "3"}
    assert server_frame(frames.result("r", mpb.AcknowledgeDeliveriesResponse())).HasField(
        "result")
    st = status_pb2.Status(code=5, message="gone")
    st.details.add().Pack(error_details_pb2.ErrorInfo(reason="GONE", domain="zynk.dev"))
    err = server_frame(frames.error("e", st))
    assert err.id == "e" and err.error == st
    assert "id" not in json.loads(frames.error("", st))
    pong = server_frame(frames.pong("p"))
    assert pong.id == "p" and abs(pong.pong.server_time.seconds - time.time()) < 5
    assert json.loads(frames.pong("")).keys() == {"pong"}


def test_error_status_matches_rest_errors():
    from gateway.errors import gateway_error, status_json

    status = frames.error_status(grpc.StatusCode.NOT_FOUND, "METHOD_NOT_FOUND", "no such method",
                                 field="call.method")
    rest = status_json(gateway_error(404, grpc.StatusCode.NOT_FOUND, "METHOD_NOT_FOUND",
                                     "no such method", field="call.method").status)
    assert status == rest
