"""The PubSub port on Redis PUBLISH/SUBSCRIBE (distributed mode): wake-ups cross replicas.

One subscriber connection per process carries every local Subscription: a Redis channel is
SUBSCRIBEd when the first local subscription adds it and UNSUBSCRIBEd when the last one
removes it; a reader task fans each message out to the local queues. Channels are named
`<key_prefix>ch:<channel>`.

Semantics are the memory adapter's: best-effort, bounded queue per subscription, and
SubscriptionOverflow once after messages were lost. Losing the connection (Redis restart,
network) loses messages too, so after the reader reconnected and resubscribed every
subscription gets SubscriptionOverflow: its owner resynchronises from the store, and
nothing published after that point is missed. `connected` and `generation` (bumped on each
reconnection) let a mirror such as the revocation list know whether it may be stale."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import redis.asyncio as aioredis

from services.runtime import logging as zlog
from services.runtime.errors import Unavailable
from services.runtime.pubsub import SubscriptionOverflow
from services.runtime.redis_backends import REDIS_DOWN, cancel_and_wait, unavailable_on_outage

log = zlog.get("redis.pubsub")

_GAP = object()


class _RedisSubscription:
    def __init__(self, hub: RedisPubSub, max_pending: int) -> None:
        self._hub = hub
        self._queue: asyncio.Queue = asyncio.Queue(max_pending)
        self.channels: set[str] = set()
        self._overflowed = False

    def _offer(self, channel: str, data: bytes) -> None:
        try:
            self._queue.put_nowait((channel, data))
        except asyncio.QueueFull:
            self._overflowed = True

    def _gap(self) -> None:
        self._overflowed = True
        try:
            self._queue.put_nowait(_GAP)  # wakes a reader blocked in get()
        except asyncio.QueueFull:
            pass

    async def get(self) -> tuple[str, bytes]:
        if not self._overflowed:
            item = await self._queue.get()
            if item is not _GAP and not self._overflowed:
                return item
        self._overflowed = False
        while not self._queue.empty():
            self._queue.get_nowait()
        raise SubscriptionOverflow("subscriber fell behind; messages were dropped")

    async def add(self, *channels: str) -> None:
        await self._hub._add(self, channels)

    async def remove(self, *channels: str) -> None:
        await self._hub._remove(self, channels)

    async def close(self) -> None:
        await self._hub._remove(self, tuple(self.channels))
        self._hub._subs.discard(self)


class RedisPubSub:
    def __init__(self, client: aioredis.Redis, listen_client: aioredis.Redis, prefix: str,
                 max_pending: int = 1024, timeout_s: float = 1.0) -> None:
        """`client` publishes; `listen_client` (its own pool, no retries) owns the subscriber
        connection, so that a broken connection surfaces here and is not silently resumed."""
        self._client = client
        self._listen_client = listen_client
        self._prefix = f"{prefix}ch:"
        self._max_pending = max_pending
        self._timeout_s = timeout_s
        self._by_channel: dict[str, set[_RedisSubscription]] = {}
        self._subs: set[_RedisSubscription] = set()
        self._ps = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self.connected = False
        self.generation = 0

    def channel_name(self, channel: str) -> str:
        return self._prefix + channel

    async def start(self) -> None:
        with unavailable_on_outage("pub/sub"):
            await self._connect()
        self._task = asyncio.create_task(self._read())

    async def publish(self, channel: str, data: bytes) -> None:
        with unavailable_on_outage("pub/sub"):
            await self._client.publish(self._prefix + channel, data)

    async def subscribe(self, channels: Iterable[str] = ()) -> _RedisSubscription:
        sub = _RedisSubscription(self, self._max_pending)
        self._subs.add(sub)
        try:
            await sub.add(*channels)
        except BaseException:
            self._subs.discard(sub)
            raise
        return sub

    async def _add(self, sub: _RedisSubscription, channels: Iterable[str]) -> None:
        async with self._lock:
            new = [c for c in dict.fromkeys(channels) if c not in sub.channels]
            first = [c for c in new if c not in self._by_channel]
            if first:
                if not self.connected:
                    raise Unavailable("pub/sub is reconnecting; retry later",
                                      reason="BACKEND_UNAVAILABLE")
                try:
                    async with asyncio.timeout(self._timeout_s):
                        await self._ps.subscribe(*[self._prefix + c for c in first])
                except REDIS_DOWN as err:
                    # The reader notices the broken connection and reconnects.
                    raise Unavailable("pub/sub is unavailable right now; retry later",
                                      reason="BACKEND_UNAVAILABLE") from err
            for c in new:
                self._by_channel.setdefault(c, set()).add(sub)
                sub.channels.add(c)

    async def _remove(self, sub: _RedisSubscription, channels: Iterable[str]) -> None:
        async with self._lock:
            gone = []
            for c in channels:
                if c not in sub.channels:
                    continue
                sub.channels.discard(c)
                subs = self._by_channel.get(c)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del self._by_channel[c]
                        gone.append(self._prefix + c)
            if gone and self.connected:
                try:
                    async with asyncio.timeout(self._timeout_s):
                        await self._ps.unsubscribe(*gone)
                except REDIS_DOWN:
                    pass  # after the reconnection only registered channels are subscribed

    async def _connect(self) -> None:
        ps = self._listen_client.pubsub(ignore_subscribe_messages=True)
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                await ps.connect()
                channels = [self._prefix + c for c in self._by_channel]
                if channels:
                    await ps.subscribe(*channels)
        except BaseException:
            await ps.aclose()
            raise
        self._ps = ps
        self.generation += 1
        self.connected = True

    async def _reconnect(self) -> None:
        self.connected = False
        old, self._ps = self._ps, None
        if old is not None:
            try:
                await old.aclose()
            except Exception:
                pass
        delay = 0.05
        while True:
            try:
                async with self._lock:
                    await self._connect()
                break
            except REDIS_DOWN:
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)
        log.info("pub/sub reconnected; subscribers resynchronise", generation=self.generation)
        for sub in tuple(self._subs):
            sub._gap()

    async def _read(self) -> None:
        while True:
            try:
                msg = await self._ps.get_message(ignore_subscribe_messages=True,
                                                 timeout=1.0)
            except REDIS_DOWN + (RuntimeError,):
                log.warning("pub/sub connection lost; reconnecting")
                await self._reconnect()
                continue
            except Exception:
                # E.g. a protocol error: the connection's state is unknown, start afresh.
                log.exception("pub/sub reader failed; reconnecting")
                await self._reconnect()
                continue
            if msg is None or msg.get("type") != "message":
                continue
            channel = msg["channel"].decode()
            if not channel.startswith(self._prefix):
                continue
            name = channel[len(self._prefix):]
            for sub in tuple(self._by_channel.get(name, ())):
                sub._offer(name, msg["data"])

    async def close(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            await cancel_and_wait(task)
        self.connected = False
        if self._ps is not None:
            ps, self._ps = self._ps, None
            try:
                await ps.aclose()
            except Exception:
                pass
        self._by_channel.clear()
        self._subs.clear()
