"""The transactional outbox on PostgreSQL: events leave only with their commit, survive a
crash, and several replicas relaying the same outbox publish each row once, in order."""

from __future__ import annotations

import asyncio
import random

import pytest
from google.protobuf import wrappers_pb2

from services.runtime.bus import Event, MemoryEventBus
from services.runtime.outbox import OutboxRelay, add_event, mark_processed
from tests.support.postgres import fresh_schema, open_test_database

pytestmark = pytest.mark.timeout(60)


class Collector:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.changed = asyncio.Event()

    async def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.changed.set()

    async def wait_for(self, n: int, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while len(self.events) < n:
                self.changed.clear()
                await self.changed.wait()


async def bus_with(collector: Collector) -> MemoryEventBus:
    bus = MemoryEventBus()
    bus.subscribe("t.topic", "g", collector)
    await bus.start()
    return bus


class NetworkBus(MemoryEventBus):
    async def publish(self, event: Event) -> None:
        await asyncio.sleep(random.uniform(0, 0.002))
        await super().publish(event)


async def test_committed_events_are_relayed_rolled_back_ones_never(postgres_url):
    db = await open_test_database(postgres_url)
    got = Collector()
    bus = await bus_with(got)
    relay = OutboxRelay(db, bus, poll_s=5)
    relay.start()
    try:
        with pytest.raises(RuntimeError):
            async with db.transaction() as tx:
                await add_event(tx, "t.topic", "k", wrappers_pb2.StringValue(value="lost"))
                raise RuntimeError("boom")
        async with db.transaction() as tx:
            await add_event(tx, "t.topic", "k", wrappers_pb2.StringValue(value="kept"), "e1")
        await got.wait_for(1, timeout=2)  # woken by the commit, not by the 5 s poll
    finally:
        await relay.stop()
        await bus.close()
    assert [e.event_id for e in got.events] == ["e1"]
    assert wrappers_pb2.StringValue.FromString(got.events[0].payload).value == "kept"
    assert got.events[0].type_name == "google.protobuf.StringValue"
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0
    await db.close()


async def test_an_idle_relay_stays_idle(postgres_url):
    db = await open_test_database(postgres_url)
    bus = MemoryEventBus()
    await bus.start()
    batches = 0

    class CountingRelay(OutboxRelay):
        async def _relay_batch(self):
            nonlocal batches
            batches += 1
            return await super()._relay_batch()

    relay = CountingRelay(db, bus, poll_s=0.1)
    relay.start()
    try:
        await asyncio.sleep(0.55)
    finally:
        await relay.stop()
        await bus.close()
        await db.close()
    assert 3 <= batches <= 8  # one look per poll, not a loop woken by its own commits


async def test_events_survive_until_relayed(postgres_url):
    """A crash after commit but before publish: the row is still there on restart."""
    schema = fresh_schema()
    first = await open_test_database(postgres_url, schema=schema)
    async with first.transaction() as tx:
        await add_event(tx, "t.topic", "k", wrappers_pb2.StringValue(value="v"), "e-crash")
    await first.close()  # no relay ran: the "crash"
    second = await open_test_database(postgres_url, schema=schema)
    got = Collector()
    bus = await bus_with(got)
    try:
        assert await OutboxRelay(second, bus).relay_once() == 1
        await got.wait_for(1)
        assert [e.event_id for e in got.events] == ["e-crash"]
        assert await OutboxRelay(second, bus).relay_once() == 0
    finally:
        await bus.close()
        await second.close()


async def test_replicas_relaying_one_outbox_publish_each_event_once_in_order(postgres_url):
    schema = fresh_schema()
    replicas = [await open_test_database(postgres_url, schema=schema) for _ in range(3)]
    got = Collector()
    bus = NetworkBus()  # publishing takes time, as with a real broker
    bus.subscribe("t.topic", "g", got)
    await bus.start()
    relays = [OutboxRelay(db, bus, batch=7, poll_s=0.2) for db in replicas]

    async def produce(first: int, count: int) -> None:
        # Each transaction commits before the next starts: commit order is event order.
        for i in range(first, first + count, 3):
            async with replicas[i % 3].transaction() as tx:
                for n in range(i, i + 3):
                    await add_event(tx, "t.topic", "k", wrappers_pb2.Int32Value(value=n),
                                    f"e{n}")

    try:
        await produce(0, 120)  # a backlog the replicas find together when they start
        for r in relays:
            r.start()
        await produce(120, 120)  # and more while they run
        await got.wait_for(240)
        await asyncio.sleep(0.3)  # room for a duplicate to show up
    finally:
        for r in relays:
            await r.stop()
        await bus.close()
    values = [wrappers_pb2.Int32Value.FromString(e.payload).value for e in got.events]
    assert values == list(range(240))  # each exactly once, in commit order
    assert await replicas[0].fetchval("SELECT count(*) FROM outbox") == 0
    for db in replicas:
        await db.close()


async def test_a_failed_publish_leaves_the_rows_for_the_next_try(postgres_url):
    db = await open_test_database(postgres_url)

    class FlakyBus(MemoryEventBus):
        fail = True

        async def publish(self, event: Event) -> None:
            if self.fail:
                raise ConnectionError("broker down")
            await super().publish(event)

    got = Collector()
    bus = FlakyBus()
    bus.subscribe("t.topic", "g", got)
    await bus.start()
    try:
        async with db.transaction() as tx:
            await add_event(tx, "t.topic", "k", wrappers_pb2.StringValue(value="v"), "e1")
        relay = OutboxRelay(db, bus)
        with pytest.raises(ConnectionError):
            await relay.relay_once()
        assert await db.fetchval("SELECT count(*) FROM outbox") == 1
        bus.fail = False
        assert await relay.relay_once() == 1
        await got.wait_for(1)
    finally:
        await bus.close()
        await db.close()


async def test_mark_processed_is_idempotent(postgres_url):
    db = await open_test_database(postgres_url)
    try:
        async with db.transaction() as tx:
            assert await mark_processed(tx, "c", "e1") is True
            assert await mark_processed(tx, "c", "e1") is False
            assert await mark_processed(tx, "other", "e1") is True
        # A consumer whose transaction failed did not handle the event: it may try again.
        with pytest.raises(RuntimeError):
            async with db.transaction() as tx:
                assert await mark_processed(tx, "c", "e2") is True
                raise RuntimeError("handler failed")
        async with db.transaction() as tx:
            assert await mark_processed(tx, "c", "e2") is True
    finally:
        await db.close()
