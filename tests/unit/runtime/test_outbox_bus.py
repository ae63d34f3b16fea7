import asyncio

import pytest
from google.protobuf import wrappers_pb2

from services.runtime.bus import Event, MemoryEventBus
from services.runtime.outbox import OutboxRelay, add_event, mark_processed
from services.runtime.sqlite import SqliteDatabase


@pytest.fixture
async def db(tmp_path):
    d = await SqliteDatabase.open(tmp_path / "t.sqlite3")
    yield d
    await d.close()


async def test_committed_events_are_relayed_rolled_back_ones_never(db):
    bus = MemoryEventBus()
    got: list[Event] = []
    seen = asyncio.Event()

    async def handler(e: Event):
        got.append(e)
        seen.set()

    bus.subscribe("t.topic", "g", handler)
    await bus.start()
    relay = OutboxRelay(db, bus, poll_s=5)
    relay.start()
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await add_event(tx, "t.topic", "k", wrappers_pb2.StringValue(value="lost"))
            raise RuntimeError("boom")
    async with db.transaction() as tx:
        await add_event(tx, "t.topic", "k", wrappers_pb2.StringValue(value="kept"), "e1")
    await asyncio.wait_for(seen.wait(), 2)  # woken by the commit, not by the 5 s poll
    await relay.stop()
    await bus.close()
    assert [e.event_id for e in got] == ["e1"]
    assert wrappers_pb2.StringValue.FromString(got[0].payload).value == "kept"
    assert got[0].type_name == "google.protobuf.StringValue"
    assert await db.fetchall("SELECT * FROM outbox") == []


async def test_events_survive_until_relayed(tmp_path):
    """A crash after commit but before publish: the row is still there on restart."""
    path = tmp_path / "c.sqlite3"
    d1 = await SqliteDatabase.open(path)
    async with d1.transaction() as tx:
        await add_event(tx, "t", "k", wrappers_pb2.StringValue(value="v"), "e-crash")
    await d1.close()  # no relay ran: the "crash"
    d2 = await SqliteDatabase.open(path)
    bus = MemoryEventBus()
    got = []

    async def handler(e):
        got.append(e.event_id)

    bus.subscribe("t", "g", handler)
    await bus.start()
    assert await OutboxRelay(d2, bus).relay_once() == 1
    await asyncio.sleep(0.05)
    assert got == ["e-crash"]
    await bus.close()
    await d2.close()


async def test_failing_handler_gets_the_event_again():
    bus = MemoryEventBus(retry_delay_s=0.01)
    calls = []
    done = asyncio.Event()

    async def flaky(e):
        calls.append(e.event_id)
        if len(calls) < 3:
            raise ValueError("transient")
        done.set()

    bus.subscribe("t", "g", flaky)
    await bus.start()
    await bus.publish(Event("t", "k", "e1", "x", b""))
    await asyncio.wait_for(done.wait(), 2)
    await bus.close()
    assert calls == ["e1", "e1", "e1"]


async def test_mark_processed_is_idempotent(db):
    async with db.transaction() as tx:
        assert await mark_processed(tx, "c", "e1") is True
        assert await mark_processed(tx, "c", "e1") is False
        assert await mark_processed(tx, "other", "e1") is True
