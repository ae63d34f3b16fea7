"""Auth hints device-list caches right after a login or a revocation commits (the pub/sub
twin of the devices.changed event; services/runtime/hints.py)."""

from __future__ import annotations

from services.auth.domain import AuthDomain
from services.runtime import hints
from services.runtime.pubsub import MemoryPubSub
from tests.unit.auth.conftest import PASSWORD, principal


async def test_login_and_revocation_hint_the_users_device_list(env):
    pubsub = MemoryPubSub()
    env.domain = AuthDomain(env.store, env.issuer, env.limiter, env.revocations, env.settings,
                            clock=env.clock, pubsub=pubsub)
    sub = await pubsub.subscribe([hints.DEVICES_CHANGED])
    first = await env.signup("hinted")
    assert await sub.get() == (hints.DEVICES_CHANGED, first.user.id.encode())
    second = await env.domain.login("hinted", PASSWORD, "tablet", "10.0.0.1")
    assert await sub.get() == (hints.DEVICES_CHANGED, first.user.id.encode())
    await env.domain.revoke_device(principal(first), "me", second.device.id)
    assert await sub.get() == (hints.DEVICES_CHANGED, first.user.id.encode())
