"""The device's inbox over the socket: ordered entries, acknowledgements, resuming from a
cursor without loss or duplicates, takeover by a newer socket, revocation, and an upstream
restart. Real gateway on uvicorn, real WebSocket clients; MessagingService and
PresenceService are the test doubles of tests/support/realtime.py."""

import asyncio

import pytest

from services.runtime.config import RealtimeSettings
from services.runtime.errors import Unauthenticated
from tests.support.realtime import Harness, closed, message, reason, recv, recv_until, send

pytestmark = pytest.mark.timeout(30)


def cursors(frames):
    return [f["inbox"]["cursor"] for f in frames if f.get("inbox", {}).get("cursor")]


async def test_entries_arrive_in_order_with_their_cursors():
    async with Harness() as h:
        d = h.device()
        names = [h.up.messaging.push(d.name, message(seq=i)) for i in range(1, 4)]
        ws = await h.ready(d)
        frames = await recv_until(ws, lambda f: "caughtUp" in f.get("inbox", {}))
        assert cursors(frames) == names == ["1", "2", "3"]
        assert [f["inbox"]["message"]["sequence"] for f in frames[:3]] == ["1", "2", "3"]
        h.up.messaging.push(d.name, message(seq=4))  # live, after caughtUp
        live = await recv(ws)
        assert live["inbox"]["cursor"] == "4"


async def test_resume_after_a_cursor_loses_nothing_and_repeats_nothing():
    async with Harness() as h:
        d = h.device()
        for i in range(1, 6):
            h.up.messaging.push(d.name, message(seq=i))
        ws = await h.ready(d)
        first = await recv_until(ws, lambda f: "caughtUp" in f.get("inbox", {}))
        assert cursors(first) == ["1", "2", "3", "4", "5"]
        # The client processed up to 3, acknowledged up to 2, then lost the connection.
        await send(ws, {"id": "ack", "ack": {"cursor": "2"}})
        assert (await recv(ws)) == {"id": "ack", "result": {"pendingCount": "3"}}
        await ws.close()
        for i in range(6, 8):  # arrives while it is away
            h.up.messaging.push(d.name, message(seq=i))
        ws = await h.connect(d, header=False)
        await send(ws, {"id": "a", "auth": {"accessToken": d.token, "afterCursor": "3"}})
        assert "ready" in await recv(ws)
        again = await recv_until(ws, lambda f: "caughtUp" in f.get("inbox", {}))
        assert cursors(again) == ["4", "5", "6", "7"]
        # Without a cursor it starts at the oldest unacknowledged entry.
        await ws.close()
        ws = await h.ready(d)
        again = await recv_until(ws, lambda f: "caughtUp" in f.get("inbox", {}))
        assert cursors(again) == ["3", "4", "5", "6", "7"]


async def test_ack_acknowledges_for_the_sockets_own_device():
    async with Harness() as h:
        d = h.device()
        for i in range(1, 4):
            h.up.messaging.push(d.name, message(seq=i))
        ws = await h.ready(d)
        await recv_until(ws, lambda f: "caughtUp" in f.get("inbox", {}))
        await send(ws, {"ack": {"cursor": "3"}})  # no id: no answer unless it fails
        await send(ws, {"id": "again", "ack": {"cursor": "1"}})  # ordered after the first
        assert await recv(ws) == {"id": "again", "result": {}}  # pendingCount 0
        assert h.up.messaging.acked == {d.name: 3}
        await send(ws, {"id": "bad", "ack": {"cursor": ""}})  # validated by the gateway
        frame = await recv(ws)
        assert frame["id"] == "bad" and frame["error"]["code"] == 3
        assert reason(frame) == "VALIDATION_FAILED"
        violations = [d for d in frame["error"]["details"] if "fieldViolations" in d]
        assert violations[0]["fieldViolations"][0]["field"] == "ack.cursor"


async def test_a_newer_socket_of_the_device_replaces_the_older_with_4409():
    async with Harness(RealtimeSettings(heartbeat_interval_s=0.5)) as h:
        d = h.device()
        old = await h.ready(d)
        await recv(old)  # caughtUp
        await asyncio.sleep(0.6)  # the hub has marked the device online
        new = await h.ready(d)
        code, frames = await closed(old)
        assert code == 4409
        assert frames[-1]["error"]["code"] == 10  # ABORTED, from the messaging service
        assert reason(frames[-1]) == "SUPERSEDED"
        assert await recv(new) == {"inbox": {"caughtUp": {}}}
        h.up.messaging.push(d.name, message())
        assert (await recv(new))["inbox"]["cursor"] == "1"
        await asyncio.sleep(0.3)
        # The replaced socket did not sign the device off: the newer one keeps it online.
        assert 2 not in h.up.presence.states(d.name)  # PRESENCE_STATE_OFFLINE


async def test_revocation_ends_the_stream_and_closes_4401():
    async with Harness() as h:
        d = h.device()
        ws = await h.ready(d)
        await recv(ws)
        h.up.messaging.end_stream(d.name, Unauthenticated("this device has been revoked",
                                                          reason="DEVICE_REVOKED"))
        code, frames = await closed(ws)
        assert code == 4401
        assert reason(frames[-1]) == "DEVICE_REVOKED"


async def test_an_upstream_restart_resumes_without_loss_or_duplicates():
    async with Harness(RealtimeSettings(retry_initial_s=0.05, retry_max_s=0.2)) as h:
        d = h.device()
        for i in range(1, 4):
            h.up.messaging.push(d.name, message(seq=i))
        ws = await h.ready(d)
        got = await recv_until(ws, lambda f: "caughtUp" in f.get("inbox", {}))
        await h.up.stop()  # the messaging service goes away...
        for i in range(4, 7):  # ...while entries keep arriving in its store
            h.up.messaging.push(d.name, message(seq=i))
        await asyncio.sleep(0.5)
        await h.up.start()  # ...and comes back on the same port
        got += await recv_until(ws, lambda f: "caughtUp" in f.get("inbox", {}), timeout=10)
        h.up.messaging.push(d.name, message(seq=7))
        got.append(await recv(ws))
        assert cursors(got) == ["1", "2", "3", "4", "5", "6", "7"]
        # It resumed after the last cursor it had forwarded.
        assert h.up.messaging.subscribes[-1] == (d.name, "3")


async def test_a_stream_that_fails_otherwise_closes_1011():
    async with Harness() as h:
        d = h.device()
        ws = await h.ready(d)
        await recv(ws)
        h.up.messaging.end_stream(d.name, RuntimeError("bug in the service"))
        code, frames = await closed(ws)
        assert code == 1011
        assert frames[-1]["error"] == {"code": 13, "message": "internal error", "details": []}


async def test_keepalives_are_forwarded_as_inbox_frames():
    from zynk.messaging.v1 import messaging_pb2 as mpb

    async with Harness() as h:
        d = h.device()
        ws = await h.ready(d)
        await recv(ws)
        keepalive = mpb.Keepalive()
        keepalive.server_time.GetCurrentTime()
        h.up.messaging.inbox.setdefault(d.name, []).append(
            mpb.SubscribeResponse(keepalive=keepalive))  # not queued: no cursor
        h.up.messaging.push(d.name, message())
        frame = await recv(ws)
        assert set(frame["inbox"]) == {"keepalive"}
        assert (await recv(ws))["inbox"]["cursor"] == "2"
