"""The outbox relay publishing through Kafka (a private Tansu broker) while the broker goes
away: rows stay in the outbox until the broker acknowledged them, so nothing is lost."""

from __future__ import annotations

import asyncio

import pytest
from google.protobuf import wrappers_pb2

from services.runtime.bus import Event
from services.runtime.errors import Unavailable
from services.runtime.kafka_bus import KafkaEventBus
from services.runtime.outbox import OutboxRelay, add_event
from services.runtime.sqlite import SqliteDatabase
from tests.support.backends import TOPIC_PREFIX, TansuBroker

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def db(tmp_path):
    d = await SqliteDatabase.open(tmp_path / "svc.sqlite3")
    yield d
    await d.close()


def kafka_bus(broker: TansuBroker) -> KafkaEventBus:
    return KafkaEventBus(broker.bootstrap, topic_prefix=TOPIC_PREFIX, partitions=4,
                         idempotence=False, request_timeout_s=1.5, session_timeout_s=2.0,
                         client_id="outbox-it", retry_delay_s=0.05)


async def write(db: SqliteDatabase, ids: range) -> None:
    for i in ids:
        async with db.transaction() as tx:
            await add_event(tx, "it.things", f"conv-{i % 5}",
                            wrappers_pb2.StringValue(value=f"v{i}"), f"e{i}")


async def outbox_rows(db: SqliteDatabase) -> int:
    return len(await db.fetchall("SELECT seq FROM outbox"))


async def until(predicate, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


def checking(condition):
    async def predicate() -> bool:
        return condition()

    return predicate


async def test_a_frozen_broker_loses_nothing(kafka_process, db):
    bus = kafka_bus(kafka_process)
    got: set[str] = set()

    async def handler(e: Event) -> None:
        got.add(e.event_id)

    bus.subscribe("it.things", "it-consumer", handler)
    await bus.start()
    relay = OutboxRelay(db, bus, poll_s=0.2)
    relay.start()
    try:
        await write(db, range(0, 20))

        async def first_half():
            return got >= {f"e{i}" for i in range(20)}

        await until(first_half, 20)
        kafka_process.pause()
        try:
            await write(db, range(20, 40))  # commits succeed; publishing cannot
            await asyncio.sleep(3.0)  # longer than the request timeout: publishes fail
            assert await outbox_rows(db) > 0, "rows were dropped while the broker was down"
        finally:
            kafka_process.resume()

        async def everything():
            return got >= {f"e{i}" for i in range(40)} and await outbox_rows(db) == 0

        await until(everything, 40)
        assert got == {f"e{i}" for i in range(40)}
    finally:
        await relay.stop()
        await bus.close()


async def test_rows_written_while_the_broker_is_down_are_published_after_it_restarts(
        kafka_process, db):
    bus = kafka_bus(kafka_process)
    relay = OutboxRelay(db, bus)
    try:
        await write(db, range(0, 5))
        assert await relay.relay_once() == 5

        kafka_process.stop()
        await write(db, range(5, 15))
        with pytest.raises(Unavailable):
            await relay.relay_once()
        assert await outbox_rows(db) == 10

        # Memory storage: the restarted broker has forgotten topics and offsets, so the bus
        # must create the topic again; a fresh group then reads what the relay kept.
        kafka_process.start()
        async with asyncio.timeout(20):
            while True:
                try:
                    if await relay.relay_once() == 0 and await outbox_rows(db) == 0:
                        break
                except Unavailable:
                    await asyncio.sleep(0.2)

        reader = kafka_bus(kafka_process)
        got: list[str] = []

        async def handler(e: Event) -> None:
            got.append(e.event_id)

        reader.subscribe("it.things", "it-after-restart", handler)
        await reader.start()
        try:
            await until(checking(lambda: len(got) >= 10), 20)
            assert sorted(set(got)) == sorted(f"e{i}" for i in range(5, 15))
        finally:
            await reader.close()
    finally:
        await bus.close()
