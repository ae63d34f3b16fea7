"""Redis adapters of the runtime ports (distributed mode): rate limits, revocations and the
TTL cache, shared by every replica. Pub/sub is in redis_pubsub.py.

Every key lives under `backends.key_prefix`:
  <prefix>rl:<limiter key>    hash {t: tokens, ts: refill time}, expires once full again
  <prefix>cache:<cache key>   string, PX = the entry's TTL
  <prefix>revoked             sorted set: device id -> revoked-until (epoch s)
and the revocation broadcast is the pub/sub channel "runtime.revocations".

Redis unreachable or too slow: every call fails within a few socket timeouts with
Unavailable (gRPC UNAVAILABLE, retryable) — nothing waits forever."""

from __future__ import annotations

import asyncio
import contextlib
import time

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.runtime import logging as zlog
from services.runtime.config import Backends, Rate
from services.runtime.errors import Unavailable
from services.runtime.pubsub import SubscriptionOverflow
from services.runtime.ratelimit import Decision

log = zlog.get("redis")

REVOCATIONS_CHANNEL = "runtime.revocations"
# Connections per client (per process and port user): commands are short, so this carries
# thousands of calls a second; beyond it callers queue for a free connection.
MAX_CONNECTIONS = 100
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)


def redis_client(backends: Backends, *, retries: int = 1) -> aioredis.Redis:
    """A client with bounded waits. One retry (on a fresh connection) hides the stale
    pooled connections a Redis restart leaves behind; more would only delay the error.
    A burst of more concurrent calls than the pool holds waits (at most the timeout) for a
    connection, where redis-py's default pool would fail them at once."""
    if not backends.redis_url:
        raise ValueError("redis backends need backends.redis_url (redis://host:port/db)")
    t = backends.redis_timeout_s
    pool = aioredis.BlockingConnectionPool.from_url(
        backends.redis_url, max_connections=MAX_CONNECTIONS, timeout=t,
        socket_timeout=t, socket_connect_timeout=t,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries),
        health_check_interval=5)
    return aioredis.Redis.from_pool(pool)


async def cancel_and_wait(task: asyncio.Task) -> None:
    """Cancel `task` until it has ended. Once is not always enough: a cancellation landing
    in a redis-py command just after a reconnect can come out as a connection error, which
    a retry loop then handles, and the task would wait forever (seen on redis 8.1)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    if not task.cancelled() and task.exception() is not None:
        log.warning("background task ended with an error", error=repr(task.exception()))


@contextlib.contextmanager
def unavailable_on_outage(what: str):
    try:
        yield
    except REDIS_DOWN as err:
        raise Unavailable(f"{what} is unavailable right now; retry later",
                          reason="BACKEND_UNAVAILABLE") from err


# Token bucket, atomic on the server. Time is Redis's own clock, so replicas with skewed
# clocks share one bucket consistently. The key expires when the bucket would be full again.
_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {allowed, string.format('%.6f', retry)}
"""


class RedisRateLimiter:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = f"{prefix}rl:"
        # EVALSHA, falling back to EVAL after a restart emptied the script cache.
        self._script = client.register_script(_TOKEN_BUCKET)

    async def hit(self, key: str, rate: Rate, cost: float = 1.0) -> Decision:
        with unavailable_on_outage("rate limiting"):
            allowed, retry = await self._script(
                keys=[self._prefix + key], args=[rate.per_second, rate.burst, cost])
        return Decision(bool(allowed), float(retry))


class RedisCache:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = f"{prefix}cache:"

    async def get(self, key: str) -> bytes | None:
        with unavailable_on_outage("the cache"):
            return await self._client.get(self._prefix + key)

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        with unavailable_on_outage("the cache"):
            await self._client.set(self._prefix + key, value, px=max(1, int(ttl_s * 1000)))

    async def delete(self, *keys: str) -> None:
        if keys:
            with unavailable_on_outage("the cache"):
                await self._client.delete(*[self._prefix + k for k in keys])


class RedisRevocationList:
    """Revoked devices, shared by every replica, checked on every authenticated call.

    Each process mirrors the (small: only devices revoked within one access-token lifetime)
    set in memory, so `is_revoked` is a dict lookup. The mirror is trusted only while it is
    provably current: it is loaded after subscribing to the revocation channel, every
    `revoke` publishes on that channel in the same MULTI as the write, and the pub/sub
    connection signals any gap (disconnect, Redis restart, overflow). During a gap the
    answer comes from Redis itself (one ZSCORE, UNAVAILABLE if Redis is down) and the
    mirror is reloaded. A revocation therefore takes effect on every replica as soon as the
    publish reaches it — or at once, by the direct lookup, on a replica that missed it."""

    def __init__(self, client: aioredis.Redis, pubsub, prefix: str, clock=time.time) -> None:
        self._client = client
        self._pubsub = pubsub
        self._key = f"{prefix}revoked"
        self._clock = clock
        self._until: dict[str, float] = {}
        self._synced_generation: int | None = None
        self._sub = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._sub = await self._pubsub.subscribe([REVOCATIONS_CHANNEL])
        await self._reload()
        self._task = asyncio.create_task(self._listen())

    async def revoke(self, device_id: str, until: float) -> None:
        now = self._clock()
        with unavailable_on_outage("device revocation"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.zadd(self._key, {device_id: until}, gt=True)
                pipe.zremrangebyscore(self._key, "-inf", now)
                pipe.publish(self._pubsub.channel_name(REVOCATIONS_CHANNEL),
                             f"{until!r} {device_id}".encode())
                await pipe.execute()
        self._remember(device_id, until)

    async def is_revoked(self, device_id: str) -> bool:
        now = self._clock()
        if self._mirror_current():
            until = self._until.get(device_id)
            return until is not None and until > now
        with unavailable_on_outage("the revocation list"):
            score = await self._client.zscore(self._key, device_id)
        return score is not None and score > now

    def _mirror_current(self) -> bool:
        return (self._synced_generation is not None and self._pubsub.connected
                and self._pubsub.generation == self._synced_generation)

    def _remember(self, device_id: str, until: float) -> None:
        if until > self._until.get(device_id, 0.0):
            self._until[device_id] = until
        if len(self._until) % 256 == 0:
            now = self._clock()
            for k in [k for k, u in self._until.items() if u <= now]:
                del self._until[k]

    async def _reload(self) -> None:
        generation = self._pubsub.generation  # before reading: a later gap invalidates us
        with unavailable_on_outage("the revocation list"):
            rows = await self._client.zrangebyscore(self._key, self._clock(), "+inf",
                                                    withscores=True)
        for member, score in rows:
            self._remember(member.decode(), float(score))
        self._synced_generation = generation

    async def _listen(self) -> None:
        delay = 0.05
        while True:
            try:
                _, data = await self._sub.get()
                until, _, device_id = data.decode().partition(" ")
                self._remember(device_id, float(until))
            except SubscriptionOverflow:
                self._synced_generation = None
                while self._synced_generation is None:
                    try:
                        await self._reload()
                        delay = 0.05
                    except Unavailable:
                        await asyncio.sleep(delay)
                        delay = min(2.0, delay * 2)
            except (ValueError, UnicodeDecodeError):
                log.warning("malformed revocation message ignored")

    async def close(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            await cancel_and_wait(task)
        if self._sub is not None:
            await self._sub.close()
            self._sub = None
