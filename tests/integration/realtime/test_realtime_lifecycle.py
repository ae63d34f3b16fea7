"""Heartbeats, presence, limits and shutdown of the realtime socket. Real gateway on uvicorn,
real WebSocket clients (and a raw one where a test needs a client that never answers pings or
never reads); MessagingService and PresenceService are the test doubles of
tests/support/realtime.py."""

import asyncio
import time

import pytest

from services.runtime.config import Rate, RealtimeSettings
from tests.support.realtime import (
    Harness,
    RawClient,
    closed,
    message,
    reason,
    recv,
    send,
)

pytestmark = pytest.mark.timeout(30)
ONLINE, OFFLINE = 1, 2
FAST = RealtimeSettings(heartbeat_interval_s=0.3)


async def test_presence_heartbeats_while_open_and_offline_when_closed():
    async with Harness(FAST) as h:
        d = h.device()
        ws = await h.ready(d)
        await asyncio.sleep(1.2)
        beats = h.up.presence.states(d.name)
        assert beats.count(ONLINE) >= 3 and OFFLINE not in beats
        await ws.close()
        await asyncio.sleep(0.3)
        assert h.up.presence.states(d.name)[-1] == OFFLINE
        assert h.realtime.connections == 0


async def test_the_server_pings_and_pongs_keep_a_quiet_client_connected():
    async with Harness(FAST) as h:
        d = h.device()
        pings = []
        ws = await h.ready(d)
        original = ws.protocol.recv_frame

        def spy(frame):
            if frame.opcode.name == "PING":
                pings.append(time.monotonic())
            return original(frame)

        ws.protocol.recv_frame = spy
        await asyncio.sleep(1.5)  # 5 intervals: far past the 2-interval idle limit
        assert ws.close_code is None  # the client library answered every ping with a pong
        assert len(pings) >= 3


async def test_a_client_that_shows_no_sign_of_life_is_closed_4408():
    async with Harness(FAST) as h:
        d = h.device()
        raw = RawClient(h.url, d.token)
        await raw.open()  # then never answers a ping nor sends anything
        started = time.monotonic()
        code, _ = await raw.read_until_closed(timeout=5)
        assert code == 4408
        assert 0.5 < time.monotonic() - started < 4.0
        events = raw.proto.events_received()
        texts = [e.data.decode() for e in events
                 if getattr(e, "opcode", None) is not None and e.opcode.name == "TEXT"]
        assert '"IDLE"' in texts[-1]
        raw.close()


async def test_presence_failures_never_break_the_socket():
    async with Harness(FAST) as h:
        h.up.presence.fail_heartbeats = True
        d = h.device()
        ws = await h.ready(d)
        await recv(ws)
        await asyncio.sleep(1.0)
        await send(ws, {"id": "p", "ping": {}})
        assert (await recv(ws))["id"] == "p"
        await h.up.stop()  # presence (and messaging) unreachable altogether
        await asyncio.sleep(0.8)
        await send(ws, {"id": "q", "ping": {}})
        assert (await recv(ws))["id"] == "q"


async def test_a_frame_over_the_size_limit_closes_1009():
    async with Harness() as h:
        ws = await h.ready(h.device())
        await recv(ws)
        await ws.send('{"id": "big", "ping": {}, "pad": "' + "x" * (256 * 1024) + '"}')
        code, _ = await closed(ws)
        assert code == 1009


async def test_a_frame_just_under_the_limit_is_read():
    async with Harness() as h:
        ws = await h.ready(h.device())
        await recv(ws)
        frame = '{"id":"big","call":{"method":"m/M","request":{"p":"'
        frame += "x" * (256 * 1024 - len(frame) - 10) + '"}}}'
        await ws.send(frame)
        assert reason(await recv(ws)) == "METHOD_NOT_FOUND"  # read and parsed


async def test_fragmented_messages_are_reassembled():
    async with Harness() as h:
        ws = await h.ready(h.device())
        await recv(ws)
        await ws.send(iter(['{"id": "frag', 'mented", ', '"ping": {}}']))
        assert (await recv(ws))["id"] == "fragmented"


async def test_binary_frames_close_4400():
    async with Harness() as h:
        ws = await h.ready(h.device())
        await recv(ws)
        await ws.send(b'{"ping": {}}')
        code, frames = await closed(ws)
        assert code == 4400 and reason(frames[-1]) == "BINARY_FRAME"


async def test_a_flooding_client_is_closed_4429():
    settings = RealtimeSettings(frame_rate=Rate(per_second=0.1, burst=10))
    async with Harness(settings) as h:
        ws = await h.ready(h.device())
        await recv(ws)
        for i in range(30):
            try:
                await send(ws, {"id": f"p{i}", "ping": {}})
            except Exception:  # noqa: BLE001 -- the server may already have closed
                break
        code, frames = await closed(ws)
        assert code == 4429
        assert sum(1 for f in frames if "pong" in f) == 10  # the burst
        assert reason(frames[-1]) == "TOO_MANY_FRAMES"


async def test_a_steady_client_under_the_rate_is_not_closed():
    settings = RealtimeSettings(frame_rate=Rate(per_second=50, burst=5))
    async with Harness(settings) as h:
        ws = await h.ready(h.device())
        await recv(ws)
        for i in range(20):
            await send(ws, {"id": f"p{i}", "ping": {}})
            assert (await recv(ws))["id"] == f"p{i}"
            await asyncio.sleep(0.03)


async def test_a_client_that_stops_reading_is_dropped():
    settings = RealtimeSettings(stall_timeout_s=0.5)
    async with Harness(settings) as h:
        d = h.device()
        blob = b"\x01" * 60_000
        for _ in range(400):  # ~32 MB of base64 JSON: more than any socket buffer holds
            m = message()
            m.envelope.ciphertext = blob
            h.up.messaging.push(d.name, m)
        raw = RawClient(h.url, d.token)
        await raw.open()
        raw.pause_reading()
        await asyncio.sleep(0.2)
        deadline = time.monotonic() + 10
        while h.realtime.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        # Dropped (the client is still connected and would take data if it read), rather
        # than buffered without bound.
        assert h.realtime.connections == 0
        raw.close()


async def test_clean_shutdown_closes_1001_and_signs_devices_off():
    h = Harness(FAST)
    await h.__aenter__()
    try:
        d = h.device()
        ws = await h.ready(d)
        await recv(ws)
        await asyncio.sleep(0.4)
        await h.gateway.stop()
        h.gateway = None
        code, _ = await closed(ws)
        assert code == 1001
        assert ws.close_reason == "server shutting down"
        assert h.up.presence.states(d.name)[-1] == OFFLINE
    finally:
        await h.__aexit__(None, None, None)
