"""Client frames over the socket: send, read, typing, call, watch, ping, and the error frames
for everything the gateway cannot accept. Real gateway on uvicorn, real WebSocket clients;
MessagingService and PresenceService are the test doubles of tests/support/realtime.py."""

import asyncio
import base64
import json
import uuid

import pytest

from services.runtime.config import RealtimeSettings
from tests.support.realtime import Harness, reason, recv, recv_until, send

pytestmark = pytest.mark.timeout(30)
CONV = "conversations/" + str(uuid.uuid4())


def send_frame(fid, to, message_id=None):
    return {"id": fid, "send": {
        "parent": CONV, "messageId": message_id or str(uuid.uuid4()),
        "pairwise": {"envelopes": [{
            "recipientDevice": to, "type": "ENVELOPE_TYPE_RATCHET",
            "ciphertext": base64.b64encode(b"\x00ciphertext\xff").decode()}]}}}


async def pair(h):
    alice, bob = h.device(), h.device()
    a, b = await h.ready(alice), await h.ready(bob)
    assert await recv(a) == {"inbox": {"caughtUp": {}}}
    assert await recv(b) == {"inbox": {"caughtUp": {}}}
    return alice, bob, a, b


async def test_send_reaches_the_recipients_socket():
    async with Harness() as h:
        alice, bob, a, b = await pair(h)
        mid = str(uuid.uuid4())
        await send(a, send_frame("s1", bob.name, mid))
        result = await recv(a)
        assert result["id"] == "s1"
        stored = result["result"]["message"]
        assert stored["name"] == f"{CONV}/messages/{mid}"
        assert stored["senderDevice"] == alice.name  # the socket's device, from its token
        entry = await recv(b)
        assert entry["inbox"]["message"]["envelope"]["ciphertext"] == base64.b64encode(
            b"\x00ciphertext\xff").decode()


async def test_sends_commit_in_the_order_the_client_sent_them():
    async with Harness() as h:
        _, bob, a, _ = await pair(h)
        ids = [str(uuid.uuid4()) for _ in range(8)]
        for i, mid in enumerate(ids):
            await send(a, send_frame(f"s{i}", bob.name, mid))
        answers = [await recv(a) for _ in ids]
        assert [f["id"] for f in answers] == [f"s{i}" for i in range(8)]
        assert h.up.messaging.sent == ids


async def test_read_and_typing():
    async with Harness() as h:
        alice, _, a, _ = await pair(h)
        await send(a, {"id": "r", "read": {"conversation": CONV, "readSequence": "7"}})
        assert await recv(a) == {"id": "r", "result": {"readSequence": "7"}}
        assert h.up.messaging.reads == [(alice.name, CONV, 7)]
        await send(a, {"id": "t", "typing": {"conversation": CONV, "typing": True}})
        frame = await recv(a)
        assert frame["id"] == "t" and frame["result"]["expireTime"].endswith("Z")
        assert h.up.presence.typing == [(f"users/{alice.user_id}", CONV, True)]


async def test_call_reaches_any_unary_rest_method():
    async with Harness() as h:
        _, _, a, _ = await pair(h)
        await send(a, {"id": "c1", "call": {
            "method": "zynk.messaging.v1.MessagingService/ListConversations",
            "request": {"pageSize": 3}}})
        frame = await recv(a)
        assert frame["id"] == "c1"
        assert [c["name"] for c in frame["result"]["conversations"]] == [
            "conversations/c0", "conversations/c1", "conversations/c2"]
        # Upstream errors come back as the same google.rpc.Status JSON REST sends.
        await send(a, {"id": "c2", "call": {
            "method": "zynk.messaging.v1.MessagingService/GetConversation",
            "request": {"name": "conversations/0000"}}})
        frame = await recv(a)
        assert frame["id"] == "c2" and frame["error"]["code"] == 5
        assert frame["error"]["message"] == "conversations/0000 not found"
        assert reason(frame) == "CONVERSATION_NOT_FOUND"
        # Upstream validation (the request's buf.validate rules) applies too.
        await send(a, {"id": "c3", "call": {
            "method": "zynk.messaging.v1.MessagingService/GetConversation",
            "request": {"name": "nope"}}})
        frame = await recv(a)
        assert frame["error"]["code"] == 3 and reason(frame) == "VALIDATION_FAILED"


@pytest.mark.parametrize("method", [
    "zynk.messaging.v1.MessagingService/CheckConversationMembership",  # internal
    "zynk.messaging.v1.MessagingService/Subscribe",  # streaming
    "zynk.messaging.v1.MessagingService/Nope",
    "zynk.auth.v1.AuthService/Login",  # not loaded in this gateway
])
async def test_call_refuses_what_is_not_on_the_allow_list(method):
    async with Harness() as h:
        ws = await h.ready(h.device())
        await send(ws, {"id": "c", "call": {"method": method, "request": {}}})
        frame = await recv_until(ws, lambda f: f.get("id") == "c")
        assert frame[-1]["error"]["code"] == 5 and reason(frame[-1]) == "METHOD_NOT_FOUND"


async def test_call_request_errors_name_the_field():
    async with Harness() as h:
        ws = await h.ready(h.device())
        await recv(ws)
        await send(ws, {"id": "c", "call": {
            "method": "zynk.messaging.v1.MessagingService/ListConversations",
            "request": {"pageSize": "many"}}})
        frame = await recv(ws)
        assert frame["error"]["code"] == 3 and reason(frame) == "INVALID_FIELD_VALUE"
        bad = next(d for d in frame["error"]["details"] if "fieldViolations" in d)
        assert bad["fieldViolations"][0]["field"] == "call.request.pageSize"
        await send(ws, {"id": "d", "call": {
            "method": "zynk.messaging.v1.MessagingService/ListConversations",
            "request": {"noSuchField": 1}}})
        frame = await recv(ws)
        assert reason(frame) == "UNKNOWN_FIELD"


async def test_call_keeps_int64_precision():
    async with Harness() as h:
        ws = await h.ready(h.device())
        await recv(ws)
        # read_sequence is an int64: a JSON number beyond 2**53 must not be rounded.
        await send(ws, {"id": "r", "call": {
            "method": "zynk.messaging.v1.MessagingService/MarkRead",
            "request": {"conversation": CONV, "readSequence": "9007199254740993"}}})
        assert (await recv(ws))["result"] == {"readSequence": "9007199254740993"}
        await ws.send('{"id":"r2","call":{"method":"zynk.messaging.v1.MessagingService/'
                      'MarkRead","request":{"conversation":"' + CONV + '",'
                      '"readSequence":9007199254740993}}}')
        assert (await recv(ws))["result"] == {"readSequence": "9007199254740993"}


async def test_watch_forwards_presence_and_can_be_replaced():
    from zynk.presence.v1 import presence_pb2 as ppb

    async with Harness() as h:
        alice, bob, a, _ = await pair(h)
        who = f"users/{bob.user_id}/presence"
        await send(a, {"id": "w1", "watch": {"names": [who]}})
        frame = await recv(a)
        assert frame == {"presence": {"presence": {"name": who,
                                                   "state": "PRESENCE_STATE_ONLINE"}}}
        h.up.presence.watch_feed.put_nowait(ppb.WatchPresenceResponse(
            typing=ppb.TypingIndicator(conversation=CONV, user=f"users/{bob.user_id}",
                                       typing=True)))
        assert (await recv(a))["presence"]["typing"]["typing"] is True
        await send(a, {"id": "w2", "watch": {"conversations": [CONV]}})
        await asyncio.sleep(0.2)
        assert h.up.presence.watches == [[who], [CONV]]
        # Invalid watches are refused by the gateway before reaching presence.
        await send(a, {"id": "w3", "watch": {}})
        frame = await recv(a)
        assert frame["id"] == "w3" and reason(frame) == "VALIDATION_FAILED"


async def test_ping_pong():
    async with Harness() as h:
        ws = await h.ready(h.device())
        await recv(ws)
        await send(ws, {"id": "p-1", "ping": {}})
        frame = await recv(ws)
        assert frame["id"] == "p-1" and frame["pong"]["serverTime"].endswith("Z")
        await send(ws, {"ping": {}})
        assert "id" not in await recv(ws)


@pytest.mark.parametrize("text, why, fid", [
    ("{not json", "MALFORMED_JSON", None),
    ("[1, 2]", "INVALID_FRAME", None),
    ('{"id": "x", "ping": {}, "ping": {}}', "MALFORMED_JSON", None),
    ('{"id": "u", "subscribe": {}}', "UNKNOWN_FIELD", "u"),
    ('{"id": "v"}', "VALIDATION_FAILED", "v"),
    ('{"id": "two", "ping": {}, "ack": {"cursor": "1"}}', "INVALID_FIELD_VALUE", "two"),
    ('{"id": "bad id!", "ping": {}}', "VALIDATION_FAILED", None),
    ('{"id": "s", "send": {"parent": "x", "messageId": "y"}}', "VALIDATION_FAILED", "s"),
    ('{"id": "a", "auth": {"accessToken": ""}}', "VALIDATION_FAILED", "a"),
])
async def test_bad_frames_get_an_error_frame_and_the_socket_stays(text, why, fid):
    async with Harness() as h:
        ws = await h.ready(h.device())
        await recv(ws)
        await ws.send(text)
        frame = await recv(ws)
        assert frame.get("id") == fid
        assert frame["error"]["code"] == 3  # INVALID_ARGUMENT
        assert reason(frame) == why
        await send(ws, {"id": "still", "ping": {}})
        assert (await recv(ws))["id"] == "still"


async def test_validation_errors_list_every_field():
    async with Harness() as h:
        ws = await h.ready(h.device())
        await recv(ws)
        await send(ws, {"id": "s", "send": {"parent": "x", "messageId": "y",
                                            "senderKey": {"ciphertext": ""}}})
        frame = await recv(ws)
        bad = next(d for d in frame["error"]["details"] if "fieldViolations" in d)
        fields = sorted(v["field"] for v in bad["fieldViolations"])
        assert fields == ["send.message_id", "send.parent", "send.sender_key.ciphertext"]


async def test_in_flight_calls_are_bounded():
    async with Harness(RealtimeSettings(max_calls_in_flight=2)) as h:
        ws = await h.ready(h.device())
        await recv(ws)
        h.up.messaging.gate = asyncio.Event()
        call = {"method": "zynk.messaging.v1.MessagingService/ListConversations",
                "request": {}}
        for i in range(3):
            await send(ws, {"id": f"c{i}", "call": call})
        frame = await recv(ws)
        assert frame["id"] == "c2" and frame["error"]["code"] == 8
        assert reason(frame) == "TOO_MANY_CALLS"
        h.up.messaging.gate.set()
        assert sorted([(await recv(ws))["id"], (await recv(ws))["id"]]) == ["c0", "c1"]
        await send(ws, {"id": "c3", "call": call})  # capacity is back
        assert (await recv(ws))["id"] == "c3"


async def test_frames_are_proto3_json_both_ways():
    """Every server frame in these tests is parsed back as a ServerFrame by recv(); here the
    client side: original proto field names are accepted like lowerCamel ones."""
    async with Harness() as h:
        _, bob, a, b = await pair(h)
        frame = send_frame("snake", bob.name)
        body = frame["send"]
        frame["send"] = {"parent": body["parent"], "message_id": body["messageId"],
                         "pairwise": {"envelopes": [{
                             "recipient_device": bob.name, "type": 2,
                             "ciphertext": body["pairwise"]["envelopes"][0]["ciphertext"]}]}}
        await a.send(json.dumps(frame))
        assert (await recv(a))["id"] == "snake"
        assert "message" in (await recv(b))["inbox"]
