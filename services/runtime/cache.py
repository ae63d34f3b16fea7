"""A small key/value cache with TTLs (seed §6.2: profiles 1 h, group membership 10 min).

Values are bytes (serialised protos or JSON) so the Redis adapter, shared by every replica,
holds exactly what the in-process one does. Entries are dropped on change (`delete`) by
whoever makes the change or consumes its event; the TTL bounds staleness if that is missed."""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from typing import Protocol

from services.runtime.errors import Unavailable


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def delete(self, *keys: str) -> None: ...


class MemoryCache:
    """In-process adapter (embedded mode): a bounded LRU map with per-entry expiry."""

    def __init__(self, max_keys: int = 100_000, clock=time.monotonic) -> None:
        self._entries: collections.OrderedDict[str, tuple[float, bytes]] = (
            collections.OrderedDict())
        self._max = max_keys
        self._clock = clock

    async def get(self, key: str) -> bytes | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        expires, value = hit
        if expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        self._entries[key] = (self._clock() + ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def delete(self, *keys: str) -> None:
        for k in keys:
            self._entries.pop(k, None)


class Generations:
    """Keeps a read-through cache from storing what a concurrent change just replaced.

    The race: a reader misses, reads the database, a writer commits and drops the entry,
    then the reader stores its (old) copy, served until the TTL ends. So each entry is
    written with the generation token of its key as read BEFORE the database, `drop`
    replaces the token (kept for twice the entry TTL) before deleting the entry, and an
    entry is used only while its token is current. Costs one more cache read per hit."""

    SEP = b"\n"

    def __init__(self, cache: Cache, ttl_s: float) -> None:
        self._cache = cache
        self._ttl_s = ttl_s

    async def token(self, key: str) -> bytes:
        return await self._cache.get(_gen_key(key)) or b"-"

    async def get(self, key: str) -> bytes | None:
        raw = await self._cache.get(key)
        if raw is None:
            return None
        tag, _, value = raw.partition(self.SEP)
        return value if tag == await self.token(key) else None

    async def set(self, key: str, token: bytes, value: bytes) -> None:
        await self._cache.set(key, token + self.SEP + value, self._ttl_s)

    async def drop(self, *keys: str) -> None:
        for key in keys:
            await self._cache.set(_gen_key(key), uuid.uuid4().hex.encode(), 2 * self._ttl_s)
        await self._cache.delete(*keys)

    async def drop_after_commit(self, *keys: str, attempts: int = 3) -> bool:
        """`drop` for a change that is already committed (it must not fail the call):
        retried on Unavailable with a short backoff; False if the cache stayed
        unreachable, when the entries may be served until their TTL ends (log it)."""
        for attempt in range(attempts):
            try:
                await self.drop(*keys)
                return True
            except Unavailable:
                if attempt + 1 < attempts:
                    await asyncio.sleep(0.05 * (attempt + 1))
        return False


def _gen_key(key: str) -> str:
    return key + "#gen"
