"""RelaySession's own rules with a fake servicer and verifier: batching, slot limits,
backpressure (bounded queue, detach with UNAVAILABLE), token expiry, per-slot order."""

from __future__ import annotations

import asyncio
import base64
import json
import time

from google.rpc import code_pb2

from services.messaging.relay import RelaySession
from services.runtime.context import Principal, current_principal
from services.runtime.errors import Unauthenticated
from zynk.messaging.v1 import messaging_pb2 as pb


def token(device: str, ttl: float = 600) -> str:
    body = base64.urlsafe_b64encode(json.dumps(
        {"exp": time.time() + ttl, "d": device}).encode()).decode().rstrip("=")
    return f"h.{body}.s"


class Verifier:
    async def verify(self, tok: str) -> Principal:
        if not tok.startswith("h."):
            raise Unauthenticated("bad", reason="TOKEN_MALFORMED")
        pad = tok.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(pad + "=" * (-len(pad) % 4)))
        return Principal("u" + claims["d"], claims["d"])


class Servicer:
    def __init__(self, entries: int = 3) -> None:
        self.entries = entries
        self.calls: list[tuple[str, str]] = []
        self.live = asyncio.Event()

    async def Subscribe(self, request, context):
        me = current_principal()
        for i in range(self.entries):
            yield pb.SubscribeResponse(cursor=f"{me.device_id}:{i + 1}")
        yield pb.SubscribeResponse(caught_up=pb.CaughtUp())
        await self.live.wait()
        await asyncio.Event().wait()

    async def MarkRead(self, request, context):
        me = current_principal()
        await asyncio.sleep(0.01 if request.read_sequence % 2 else 0)  # uneven latency
        self.calls.append((me.device_id, str(request.read_sequence)))
        return pb.MarkReadResponse(read_sequence=request.read_sequence)


def attach(slot: int, device: str, ttl: float = 600) -> pb.RelayRequestItem:
    return pb.RelayRequestItem(slot=slot, attach=pb.RelayAttach(
        access_token=token(device, ttl),
        subscribe=pb.SubscribeRequest(device=f"users/u{device}/devices/{device}")))


class Feed:
    def __init__(self) -> None:
        self.q: asyncio.Queue = asyncio.Queue()

    def put(self, *items) -> None:
        self.q.put_nowait(pb.RelayRequest(items=items))

    async def __aiter__(self):
        while True:
            yield await self.q.get()


async def collect(session, feed, until, timeout=5.0, read_delay=0.0):
    out: list[pb.RelayResponseItem] = []
    batches = []

    async def run():
        async for resp in session.run(feed):
            batches.append(len(resp.items))
            out.extend(resp.items)
            if until(out):
                return
            if read_delay:
                await asyncio.sleep(read_delay)
    await asyncio.wait_for(run(), timeout)
    return out, batches


async def test_many_slots_coalesce_into_few_batches():
    feed = Feed()
    session = RelaySession(Servicer(), Verifier())
    feed.put(*[attach(i, f"d{i}") for i in range(1, 101)])
    out, batches = await collect(session, feed, lambda o: len(o) >= 400)
    assert len(out) == 400 and len(batches) < 50
    per_slot = {}
    for item in out:
        per_slot.setdefault(item.slot, []).append(item.inbox.cursor)
    assert per_slot[7] == ["d7:1", "d7:2", "d7:3", ""]  # in order, each slot its own device


async def test_slot_limit_and_bad_token():
    feed = Feed()
    session = RelaySession(Servicer(entries=0), Verifier(), max_slots=2)
    # The bad token takes a free slot (so it is the token that is refused), then the limit.
    feed.put(pb.RelayRequestItem(slot=4, attach=pb.RelayAttach(
        access_token="zz", subscribe=pb.SubscribeRequest(device="users/u/devices/d"))))
    out, _ = await collect(session, feed, lambda o: any(i.slot == 4 for i in o))
    feed.put(attach(1, "a"), attach(2, "b"), attach(3, "c"))
    more, _ = await collect(session, feed, lambda o: any(i.slot == 3 for i in o))
    detached = {i.slot: i.detached.status for i in out + more if i.HasField("detached")}
    assert detached[4].code == code_pb2.UNAUTHENTICATED
    assert detached[3].code == code_pb2.RESOURCE_EXHAUSTED
    assert 1 not in detached and 2 not in detached


async def test_a_caller_that_does_not_read_stops_being_read():
    """Results count against the writer's queue too: a caller that only writes (no token
    needed to open the stream) is no longer read once the queue is full."""
    feed = Feed()
    session = RelaySession(Servicer(entries=0), Verifier(), max_out=100)
    for n in range(20):  # 20 x 50 results for a slot that is not attached
        feed.put(*[pb.RelayRequestItem(slot=9, mark_read=pb.RelayMarkRead(
            request_id=f"{n}-{i}", request=pb.MarkReadRequest())) for i in range(50)])
    responses = session.run(feed).__aiter__()
    first = await asyncio.wait_for(responses.__anext__(), 5)  # then stop reading
    await asyncio.sleep(0.3)
    assert len(session._out) <= 100 + 50  # at most one request batch past the limit
    assert feed.q.qsize() > 0  # the rest waits unread on the caller's side
    assert first.items
    await responses.aclose()


async def test_operations_of_a_slot_run_in_order_as_its_device():
    feed = Feed()
    servicer = Servicer(entries=0)
    session = RelaySession(servicer, Verifier())
    feed.put(attach(1, "a"), attach(2, "b"))
    feed.put(*[pb.RelayRequestItem(slot=1 + n % 2, mark_read=pb.RelayMarkRead(
        request_id=str(n), request=pb.MarkReadRequest(conversation="conversations/c",
                                                      read_sequence=n + 1)))
        for n in range(10)])
    await collect(session, feed,
                  lambda o: sum(i.HasField("result") for i in o) >= 10)
    assert [s for d, s in servicer.calls if d == "a"] == ["1", "3", "5", "7", "9"]
    assert [s for d, s in servicer.calls if d == "b"] == ["2", "4", "6", "8", "10"]


async def test_a_slow_reader_gets_slots_detached_not_unbounded_queues():
    feed = Feed()
    session = RelaySession(Servicer(entries=50), Verifier(), max_queued=20, stall_s=0.2)
    feed.put(*[attach(i, f"d{i}") for i in range(1, 6)])

    def until(out):
        return sum(i.HasField("detached") for i in out) >= 1

    out, _ = await collect(session, feed, until, read_delay=0.5)
    assert session._queued_inbox <= 20 + 5  # bounded (one in hand per slot at most)
    [status] = [i.detached.status for i in out if i.HasField("detached")][:1]
    assert status.code == code_pb2.UNAVAILABLE


async def test_expired_token_detaches_the_slot():
    feed = Feed()
    session = RelaySession(Servicer(entries=0), Verifier())
    feed.put(attach(1, "a", ttl=-5.5))  # past the 5 s leeway by the next sweep
    out, _ = await collect(session, feed, lambda o: any(i.HasField("detached") for i in o))
    [d] = [i for i in out if i.HasField("detached")]
    assert d.detached.status.code == code_pb2.UNAUTHENTICATED


async def test_the_queue_is_bounded_in_bytes_too():
    class Big(Servicer):
        async def Subscribe(self, request, context):
            for i in range(50):
                yield pb.SubscribeResponse(cursor=str(i + 1), message=pb.Message(
                    envelope=pb.Envelope(ciphertext=b"x" * 10_000)))
            await asyncio.Event().wait()

    feed = Feed()
    session = RelaySession(Big(), Verifier(), max_queued_bytes=50_000, stall_s=0.2)
    feed.put(attach(1, "a"), attach(2, "b"))
    out, _ = await collect(session, feed, lambda o: any(i.HasField("detached") for i in o),
                           read_delay=0.5)
    assert session._queued_bytes <= 50_000 + 2 * 10_100
    assert [i for i in out if i.HasField("detached")][0].detached.status.code == \
        code_pb2.UNAVAILABLE
