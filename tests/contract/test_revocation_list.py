"""The RevocationList contract, against the in-process map and Redis (a real server)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def device() -> str:
    return f"device-{uuid.uuid4().hex}"


async def test_revoked_until_the_given_time(process_backends, device):
    rev = process_backends.revocations
    assert not await rev.is_revoked(device)
    await rev.revoke(device, until=time.time() + 60)
    assert await rev.is_revoked(device)
    assert not await rev.is_revoked(device + "-other")


async def test_a_revocation_expires(process_backends, device):
    rev = process_backends.revocations
    await rev.revoke(device, until=time.time() + 0.2)
    assert await rev.is_revoked(device)
    await asyncio.sleep(0.3)
    assert not await rev.is_revoked(device)
    await rev.revoke(device + "-past", until=time.time() - 1)
    assert not await rev.is_revoked(device + "-past")


async def test_the_latest_expiry_wins(process_backends, device):
    rev = process_backends.revocations
    await rev.revoke(device, until=time.time() + 60)
    await rev.revoke(device, until=time.time() + 0.1)  # must not shorten it
    await asyncio.sleep(0.2)
    assert await rev.is_revoked(device)


async def test_redis_revocation_reaches_every_replica(backend_settings, device):
    from services.runtime.backends import build_backends

    settings = backend_settings(cache="redis")
    auth, verifier = await build_backends(settings), await build_backends(settings)
    try:
        assert not await verifier.revocations.is_revoked(device)
        await auth.revocations.revoke(device, until=time.time() + 60)
        t0 = time.monotonic()
        while not await verifier.revocations.is_revoked(device):
            assert time.monotonic() - t0 < 1.0, "revocation did not reach the other replica"
            await asyncio.sleep(0.001)
        # A replica started later loads what was revoked before it.
        late = await build_backends(settings)
        assert await late.revocations.is_revoked(device)
        await late.close()
    finally:
        await auth.close()
        await verifier.close()
