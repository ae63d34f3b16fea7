"""Ephemeral publish/subscribe: realtime wake-ups between the tasks (embedded) or the replicas
(distributed, Redis) of a service — a new inbox entry for a device, a presence or typing change.

Delivery is best-effort, like Redis PUBLISH: a subscriber that is not listening, or that falls
too far behind, misses messages. Consumers therefore treat a message as a hint and keep the
durable truth elsewhere (messaging re-reads the inbox from its store on a gap or an overflow).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol


class SubscriptionOverflow(Exception):
    """The subscriber fell behind and messages were dropped: resynchronise from the store."""


class Subscription(Protocol):
    async def get(self) -> tuple[str, bytes]:
        """The next (channel, data); raises SubscriptionOverflow once after drops."""

    async def add(self, *channels: str) -> None: ...

    async def remove(self, *channels: str) -> None: ...

    async def close(self) -> None: ...


class PubSub(Protocol):
    async def publish(self, channel: str, data: bytes) -> None: ...

    async def subscribe(self, channels: Iterable[str] = ()) -> Subscription: ...

    async def close(self) -> None: ...


class _MemorySubscription:
    def __init__(self, hub: MemoryPubSub, max_pending: int) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(max_pending)
        self._channels: set[str] = set()
        self._overflowed = False

    def _offer(self, channel: str, data: bytes) -> None:
        try:
            self._queue.put_nowait((channel, data))
        except asyncio.QueueFull:
            self._overflowed = True

    async def get(self) -> tuple[str, bytes]:
        if self._overflowed:
            self._overflowed = False
            # Drop what is queued too: the consumer resynchronises from the store anyway.
            while not self._queue.empty():
                self._queue.get_nowait()
            raise SubscriptionOverflow("subscriber fell behind; messages were dropped")
        return await self._queue.get()

    async def add(self, *channels: str) -> None:
        for ch in channels:
            self._channels.add(ch)
            self._hub._subs.setdefault(ch, set()).add(self)

    async def remove(self, *channels: str) -> None:
        for ch in channels:
            self._channels.discard(ch)
            subs = self._hub._subs.get(ch)
            if subs is not None:
                subs.discard(self)
                if not subs:
                    del self._hub._subs[ch]

    async def close(self) -> None:
        await self.remove(*list(self._channels))


class MemoryPubSub:
    """In-process adapter (embedded mode): publish is a non-blocking put per subscriber."""

    def __init__(self, max_pending: int = 1024) -> None:
        self._subs: dict[str, set[_MemorySubscription]] = {}
        self._max_pending = max_pending

    async def publish(self, channel: str, data: bytes) -> None:
        for sub in tuple(self._subs.get(channel, ())):
            sub._offer(channel, data)

    async def subscribe(self, channels: Iterable[str] = ()) -> _MemorySubscription:
        sub = _MemorySubscription(self, self._max_pending)
        await sub.add(*channels)
        return sub

    async def close(self) -> None:
        self._subs.clear()
