"""The presence store contract: one suite, run against every adapter (memory; a Redis adapter
joins the `adapter` fixture's params). Times are passed in, never read from a clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.presence.memory import MemoryPresenceStore
from services.presence.store import PresenceStore, UserPresence

T = 1_700_000_000.0
TTL = 60.0
RETENTION = 3600.0

Factory = Callable[[float], PresenceStore]


@pytest.fixture(params=["memory"])
async def adapter(request):
    """A factory: retention seconds -> a fresh, empty store. Every store it made is closed."""
    made: list[PresenceStore] = []

    def factory(retention_s: float = RETENTION) -> PresenceStore:
        if request.param == "memory":
            store = MemoryPresenceStore(retention_s)
        else:  # pragma: no cover - future adapters
            raise AssertionError(request.param)
        made.append(store)
        return store

    yield factory
    for store in made:
        await store.close()


@pytest.fixture
def store(adapter: Factory) -> PresenceStore:
    return adapter(RETENTION)


def offline(user: str, since: float | None, last_seen: float | None) -> UserPresence:
    return UserPresence(user, False, since, last_seen)


async def test_an_unknown_user_is_offline_without_times(store):
    assert await store.get(["ghost"], T) == [offline("ghost", None, None)]
    assert await store.expire(T, 100) == []


async def test_first_heartbeat_changes_later_ones_refresh(store):
    t = await store.heartbeat("u", "d1", T, T + TTL)
    assert t.changed and t.presence == UserPresence("u", True, T, None)
    t = await store.heartbeat("u", "d1", T + 10, T + 10 + TTL)
    assert not t.changed and t.presence == UserPresence("u", True, T, None)
    t = await store.heartbeat("u", "d2", T + 20, T + 20 + TTL)
    assert not t.changed and t.presence.since == T
    assert await store.get(["u"], T + 30) == [UserPresence("u", True, T, None)]


async def test_a_lease_is_live_strictly_before_its_expiry(store):
    await store.heartbeat("u", "d1", T, T + TTL)
    assert (await store.get(["u"], T + TTL - 0.001))[0].online
    # Expired but not swept: reads already say offline, with the lease's times.
    assert await store.get(["u"], T + TTL) == [offline("u", T + TTL, T)]


async def test_expire_reports_each_user_once(store):
    await store.heartbeat("u", "d1", T, T + TTL)
    await store.heartbeat("u", "d1", T + 20, T + 20 + TTL)  # refreshed: old expiry is void
    assert await store.expire(T + TTL + 1, 100) == []
    assert (await store.get(["u"], T + TTL + 1))[0].online
    gone = await store.expire(T + 20 + TTL + 5, 100)
    assert gone == [offline("u", T + 20 + TTL, T + 20)]
    assert await store.expire(T + 20 + TTL + 6, 100) == []
    assert await store.get(["u"], T + 200) == [offline("u", T + 20 + TTL, T + 20)]


async def test_a_user_goes_offline_only_with_the_last_device(store):
    await store.heartbeat("u", "phone", T, T + TTL)
    await store.heartbeat("u", "laptop", T + 30, T + 30 + TTL)
    assert await store.expire(T + TTL + 1, 100) == []
    assert (await store.get(["u"], T + TTL + 1))[0].online
    assert await store.expire(T + 30 + TTL, 100) == [offline("u", T + 30 + TTL, T + 30)]


async def test_expire_drops_at_most_limit_leases_per_call(store):
    for i, user in enumerate(["a", "b", "c"]):
        await store.heartbeat(user, "d", T + i, T + i + TTL)
    first = await store.expire(T + 100, 2)
    assert [p.user_id for p in first] == ["a", "b"]
    assert [p.user_id for p in await store.expire(T + 100, 2)] == ["c"]
    assert await store.expire(T + 100, 2) == []


async def test_signing_off_the_last_live_device(store):
    await store.heartbeat("u", "phone", T, T + TTL)
    await store.heartbeat("u", "laptop", T + 1, T + 1 + TTL)
    t = await store.sign_off("u", "phone", T + 5)
    assert not t.changed and t.presence.online
    t = await store.sign_off("u", "laptop", T + 9)
    assert t.changed and t.presence == offline("u", T + 9, T + 9)
    assert await store.get(["u"], T + 10) == [offline("u", T + 9, T + 9)]
    # Its leases are gone: nothing left to expire, nothing to report twice.
    assert await store.expire(T + 1000, 100) == []


async def test_signing_off_unknown_devices_or_offline_users_changes_nothing(store):
    t = await store.sign_off("ghost", "d", T)
    assert not t.changed and t.presence == offline("ghost", None, None)
    assert await store.get(["ghost"], T) == [offline("ghost", None, None)]
    await store.heartbeat("u", "d1", T, T + TTL)
    t = await store.sign_off("u", "other", T + 1)
    assert not t.changed and t.presence.online
    await store.sign_off("u", "d1", T + 2)
    t = await store.sign_off("u", "d1", T + 3)
    assert not t.changed and t.presence == offline("u", T + 2, T + 2)


async def test_signing_off_after_an_unswept_expiry_reports_it_once(store):
    await store.heartbeat("u", "d1", T, T + TTL)
    t = await store.sign_off("u", "d1", T + TTL + 10)
    assert t.changed and t.presence == offline("u", T + TTL, T)
    assert await store.expire(T + TTL + 11, 100) == []


async def test_a_heartbeat_after_an_unswept_expiry_starts_a_new_session(store):
    await store.heartbeat("u", "d1", T, T + TTL)
    t = await store.heartbeat("u", "d2", T + 100, T + 100 + TTL)
    assert t.changed and t.presence == UserPresence("u", True, T + 100, None)
    assert await store.expire(T + 101, 100) == []  # d1's dead lease went with it
    assert (await store.get(["u"], T + 101))[0].online


async def test_since_only_moves_forward(store):
    seen = []
    seen.append((await store.heartbeat("u", "d", T, T + TTL)).presence.since)
    seen.append((await store.sign_off("u", "d", T + 5)).presence.since)
    seen.append((await store.heartbeat("u", "d", T + 5, T + 5 + TTL)).presence.since)
    seen += [p.since for p in await store.expire(T + 5 + TTL, 100)]
    seen.append((await store.heartbeat("u", "d", T + 200, T + 200 + TTL)).presence.since)
    assert len(seen) == 5 and seen == sorted(seen)


async def test_offline_records_are_forgotten_after_the_retention(adapter):
    store = adapter(100.0)
    await store.heartbeat("u", "d", T, T + TTL)
    await store.sign_off("u", "d", T + 1)
    await store.heartbeat("v", "d", T, T + 1000)  # online past the retention
    assert (await store.get(["u"], T + 100))[0].last_seen == T + 1
    assert await store.expire(T + 101, 100) == []
    assert await store.get(["u"], T + 101) == [offline("u", None, None)]
    # Online records outlive the retention; their expiry is reported as usual.
    assert await store.get(["v"], T + 500) == [UserPresence("v", True, T, None)]
    assert await store.expire(T + 1000, 100) == [offline("v", T + 1000, T)]


async def test_get_answers_in_order_with_duplicates(store):
    await store.heartbeat("b", "d", T, T + TTL)
    got = await store.get(["a", "b", "a"], T + 1)
    assert [(p.user_id, p.online) for p in got] == [("a", False), ("b", True), ("a", False)]
