"""The gateway's shared Relay link: every socket of the process rides one stream; slots
re-attach after a break or an UNAVAILABLE detachment from their own cursors; calls are
routed back to the socket that made them. Doubles of tests/support/realtime.py upstream."""

import asyncio

import pytest

from services.runtime.config import RealtimeSettings
from services.runtime.errors import Unavailable
from tests.support.realtime import Harness, message, recv, recv_until, send

pytestmark = pytest.mark.timeout(30)
FAST = RealtimeSettings(retry_initial_s=0.05, retry_max_s=0.2)


def cursors(frames):
    return [f["inbox"]["cursor"] for f in frames if f.get("inbox", {}).get("cursor")]


def caught_up(f):
    return "caughtUp" in f.get("inbox", {})


async def test_all_sockets_share_one_relay_stream_and_get_their_own_answers():
    async with Harness() as h:
        devices = [h.device() for _ in range(5)]
        sockets = [await h.ready(d) for d in devices]
        for ws in sockets:
            await recv_until(ws, caught_up)
        assert h.up.messaging.relays == 1
        assert len(h.realtime.link.slots) == 5
        for i, ws in enumerate(sockets):
            await send(ws, {"id": f"r{i}", "read": {"conversation": "conversations/c1",
                                                    "readSequence": str(i + 1)}})
        for i, ws in enumerate(sockets):
            frame = await recv(ws)
            assert frame == {"id": f"r{i}", "result": {"readSequence": str(i + 1)}}
        # each read ran as its socket's device
        assert sorted(h.up.messaging.reads) == sorted(
            (d.name, "conversations/c1", i + 1) for i, d in enumerate(devices))
        for ws in sockets:
            await ws.close()
        await asyncio.sleep(0.2)
        assert h.realtime.link.slots == {}


async def test_every_socket_resumes_from_its_own_cursor_after_the_link_breaks():
    async with Harness(FAST) as h:
        devices = [h.device() for _ in range(3)]
        for n, d in enumerate(devices):
            for i in range(1, n + 2):
                h.up.messaging.push(d.name, message(seq=i))
        sockets = [await h.ready(d) for d in devices]
        got = [await recv_until(ws, caught_up) for ws in sockets]
        await h.up.stop()
        for d in devices:
            h.up.messaging.push(d.name, message(seq=9))
        await asyncio.sleep(0.3)
        await h.up.start()
        for n, ws in enumerate(sockets):
            got[n] += await recv_until(ws, caught_up, timeout=10)
            assert cursors(got[n]) == [str(i) for i in range(1, n + 3)]
        assert h.up.messaging.relays == 2  # one stream before, one after


async def test_a_slot_detached_unavailable_reattaches_from_its_cursor():
    async with Harness(FAST) as h:
        d = h.device()
        h.up.messaging.push(d.name, message(seq=1))
        ws = await h.ready(d)
        got = await recv_until(ws, caught_up)
        h.up.messaging.end_stream(d.name, Unavailable("overloaded", reason="RELAY_OVERLOADED"))
        await asyncio.sleep(0.05)
        h.up.messaging.push(d.name, message(seq=2))
        got += await recv_until(ws, lambda f: f.get("inbox", {}).get("cursor") == "2",
                                timeout=10)
        assert cursors(got) == ["1", "2"]
        assert h.up.messaging.subscribes[-1] == (d.name, "1")
        assert h.up.messaging.relays == 1  # the other slots' stream was not touched
