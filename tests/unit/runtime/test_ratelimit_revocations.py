from services.runtime.config import Rate
from services.runtime.errors import ResourceExhausted
from services.runtime.ratelimit import MemoryRateLimiter, enforce
from services.runtime.revocations import MemoryRevocationList

import pytest


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


async def test_bucket_allows_burst_then_refuses_then_refills():
    clock = Clock()
    rl = MemoryRateLimiter(clock=clock)
    rate = Rate(per_second=1, burst=3)
    assert [(await rl.hit("k", rate)).allowed for _ in range(4)] == [True, True, True, False]
    d = await rl.hit("k", rate)
    assert not d.allowed and 0.9 < d.retry_after_s <= 1.0
    clock.t += 1.0
    assert (await rl.hit("k", rate)).allowed
    assert (await rl.hit("other", rate)).allowed  # buckets are per key


async def test_bucket_map_is_bounded():
    rl = MemoryRateLimiter(max_keys=10)
    for i in range(100):
        await rl.hit(f"k{i}", Rate(per_second=1, burst=1))
    assert len(rl._buckets) == 10


async def test_enforce_raises_with_retry_info():
    rl = MemoryRateLimiter(clock=Clock())
    rate = Rate(per_second=0.5, burst=1)
    await enforce(rl, "x", rate, "logins")
    with pytest.raises(ResourceExhausted) as ei:
        await enforce(rl, "x", rate, "logins")
    assert ei.value.retry_after_s == pytest.approx(2.0)
    status = ei.value.to_status()
    assert status.code == 8 and len(status.details) == 2  # ErrorInfo + RetryInfo


async def test_revocation_expires():
    clock = Clock()
    rev = MemoryRevocationList(clock=clock)
    assert not await rev.is_revoked("d1")
    await rev.revoke("d1", until=clock.t + 10)
    assert await rev.is_revoked("d1")
    clock.t += 11
    assert not await rev.is_revoked("d1")
