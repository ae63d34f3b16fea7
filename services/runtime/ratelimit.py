"""Token-bucket rate limits. The interface is what the domain depends on; the in-process
adapter serves the embedded mode (a Redis adapter shares buckets across replicas)."""

from __future__ import annotations

import collections
import dataclasses
import time
from typing import Protocol

from services.runtime.config import Rate
from services.runtime.errors import ResourceExhausted


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0


class RateLimiter(Protocol):
    async def hit(self, key: str, rate: Rate, cost: float = 1.0) -> Decision: ...


class MemoryRateLimiter:
    """Buckets in a bounded LRU map: the least recently used bucket is dropped when full
    (it would have refilled anyway unless hit recently)."""

    def __init__(self, max_keys: int = 100_000, clock=time.monotonic) -> None:
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = (
            collections.OrderedDict()
        )
        self._max = max_keys
        self._clock = clock

    async def hit(self, key: str, rate: Rate, cost: float = 1.0) -> Decision:
        now = self._clock()
        tokens, last = self._buckets.pop(key, (float(rate.burst), now))
        tokens = min(float(rate.burst), tokens + (now - last) * rate.per_second)
        if tokens >= cost:
            decision = Decision(True)
            tokens -= cost
        else:
            decision = Decision(False, (cost - tokens) / rate.per_second)
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return decision


async def enforce(limiter: RateLimiter, key: str, rate: Rate, what: str) -> None:
    """Raise RESOURCE_EXHAUSTED (with RetryInfo) when the bucket for `key` is empty."""
    d = await limiter.hit(key, rate)
    if not d.allowed:
        raise ResourceExhausted(
            f"too many {what}; retry in {max(1, round(d.retry_after_s))} s",
            retry_after_s=d.retry_after_s,
            metadata={"limit": what},
        )
