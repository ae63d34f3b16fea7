"""The realtime socket's frames as the client writes and reads them (proto3 JSON of
zynk.realtime.v1.ClientFrame / ServerFrame), and the reconnect backoff."""

import json

import pytest

from clients.sdk import errors as E
from clients.sdk.inbox import backoff, client_frame, server_frame, ws_url
from zynk.realtime.v1 import realtime_pb2 as rt


def test_ws_url():
    assert ws_url("http://127.0.0.1:8080") == "ws://127.0.0.1:8080/api/v1/realtime"
    assert ws_url("https://zynk.example") == "wss://zynk.example/api/v1/realtime"
    with pytest.raises(E.ZynkError):
        ws_url("ftp://x")


def test_client_frames_are_proto3_json():
    auth = client_frame(rt.ClientFrame(id="auth", auth=rt.Authenticate(
        access_token="T", after_cursor="c-7")))
    assert json.loads(auth) == {"id": "auth", "auth": {"accessToken": "T", "afterCursor": "c-7"}}
    ack = client_frame(rt.ClientFrame(ack=rt.Acknowledge(cursor="c-9")))
    assert json.loads(ack) == {"ack": {"cursor": "c-9"}}


def test_server_frames_parse_and_unknown_fields_are_ignored():
    f = server_frame(json.dumps({"inbox": {"cursor": "c-1", "message": {
        "name": "conversations/c/messages/m", "sequence": "4",
        "envelope": {"recipientDevice": "users/u/devices/d", "type": "ENVELOPE_TYPE_RATCHET",
                     "ciphertext": "AAE="}}}, "futureField": 1}))
    assert f.WhichOneof("frame") == "inbox"
    assert f.inbox.cursor == "c-1" and f.inbox.message.sequence == 4
    assert f.inbox.message.envelope.ciphertext == b"\x00\x01"
    with pytest.raises(E.ServerError):
        server_frame("{not json")


def test_backoff_grows_with_jitter_and_is_capped():
    for attempt in range(12):
        delay = backoff(attempt)
        assert 0.25 <= delay <= 30.0
    assert max(backoff(20) for _ in range(50)) <= 30.0
    assert min(backoff(20) for _ in range(50)) >= 15.0
