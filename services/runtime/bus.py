"""The event bus interface and its in-process backend (embedded mode).

Delivery is at-least-once: a handler that raises gets the event again after a backoff,
so handlers must be idempotent (see outbox.mark_processed). Order is kept per topic for
each consumer group (per key on Kafka). services/runtime/kafka_bus.py implements the same
interface on Kafka."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from services.runtime import logging as zlog

log = zlog.get("bus")


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    topic: str
    key: str
    event_id: str
    type_name: str
    payload: bytes


Handler = Callable[[Event], Awaitable[None]]


class EventBus(Protocol):
    async def publish(self, event: Event) -> None: ...

    async def publish_many(self, events: Sequence[Event]) -> None:
        """Publish in order; returns once every event is accepted (one round trip on Kafka)."""

    def subscribe(self, topic: str, group: str, handler: Handler) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class MemoryEventBus:
    def __init__(self, max_queue: int = 10_000, retry_delay_s: float = 0.2) -> None:
        self._groups: dict[str, dict[str, tuple[asyncio.Queue[Event], Handler]]] = {}
        self._tasks: list[asyncio.Task] = []
        self._max_queue = max_queue
        self._retry_delay_s = retry_delay_s
        self._started = False

    def subscribe(self, topic: str, group: str, handler: Handler) -> None:
        groups = self._groups.setdefault(topic, {})
        if group in groups:
            raise ValueError(f"group {group!r} already consumes {topic!r}")
        q: asyncio.Queue[Event] = asyncio.Queue(self._max_queue)
        groups[group] = (q, handler)
        if self._started:
            self._tasks.append(asyncio.create_task(self._consume(topic, group, q, handler)))

    async def publish(self, event: Event) -> None:
        # Backpressure: a full consumer queue slows the publisher (the outbox relay) down
        # instead of dropping the event.
        for q, _ in self._groups.get(event.topic, {}).values():
            await q.put(event)

    async def publish_many(self, events: Sequence[Event]) -> None:
        for event in events:
            await self.publish(event)

    async def start(self) -> None:
        self._started = True
        for topic, groups in self._groups.items():
            for group, (q, handler) in groups.items():
                self._tasks.append(asyncio.create_task(self._consume(topic, group, q, handler)))

    async def _consume(self, topic: str, group: str, q: asyncio.Queue[Event], handler: Handler):
        while True:
            event = await q.get()
            attempt = 0
            while True:
                try:
                    await handler(event)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:
                    attempt += 1
                    log.exception("event handler failed; will retry", topic=topic,
                                  group=group, event_id=event.event_id, attempt=attempt)
                    await asyncio.sleep(min(5.0, self._retry_delay_s * 2 ** min(attempt, 5)))

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
