from types import SimpleNamespace

from services.runtime.backends import build_backends
from services.runtime.bus import MemoryEventBus
from services.runtime.cache import MemoryCache
from services.runtime.config import Settings
from services.runtime.kafka_bus import _decode
from services.runtime.pubsub import MemoryPubSub
from services.runtime.ratelimit import MemoryRateLimiter
from services.runtime.revocations import MemoryRevocationList


async def test_embedded_defaults_are_in_process():
    b = await build_backends(Settings())
    try:
        assert isinstance(b.bus, MemoryEventBus)
        assert isinstance(b.limiter, MemoryRateLimiter)
        assert isinstance(b.revocations, MemoryRevocationList)
        assert isinstance(b.pubsub, MemoryPubSub)
        assert isinstance(b.cache, MemoryCache)
    finally:
        await b.close()
        await b.close()  # idempotent


def record(**kw):
    base = dict(topic="p.t", partition=2, offset=7, key=b"conv", value=b"v",
                headers=[("event_id", b"e1"), ("type_name", b"x.Y")])
    return SimpleNamespace(**{**base, **kw})


def test_kafka_records_decode_to_events():
    e = _decode("t", record())
    assert (e.topic, e.key, e.event_id, e.type_name, e.payload) == ("t", "conv", "e1", "x.Y",
                                                                    b"v")


def test_a_foreign_record_gets_a_stable_id_and_empty_fields():
    e = _decode("t", record(key=None, value=None, headers=[]))
    assert (e.key, e.event_id, e.type_name, e.payload) == ("", "p.t/2/7", "", b"")


async def test_in_process_backends_have_nothing_to_probe():
    b = await build_backends(Settings())
    try:
        assert b.checks == {}
    finally:
        await b.close()


async def test_a_task_that_swallows_a_cancellation_is_still_stopped():
    import asyncio

    from services.runtime.redis_backends import cancel_and_wait

    swallowed = []

    async def stubborn():
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed.append(1)  # what a library turning it into an error amounts to

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task), 5)
    assert task.cancelled() and swallowed == [1]
