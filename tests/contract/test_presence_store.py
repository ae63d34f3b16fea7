"""The presence store contract: one suite, run against every adapter (memory, and Redis on
the machine's server with a prefix of its own per test). Times are passed in, never read from
a clock."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from services.presence.memory import MemoryPresenceStore
from services.presence.redis import RedisPresenceStore
from services.presence.store import PresenceStore, UserPresence
from tests.support.backends import KEY_PREFIX, make_settings

T = 1_700_000_000.0
TTL = 60.0
RETENTION = 3600.0

pytestmark = pytest.mark.timeout(30)


class Factory:
    """`factory(retention_s)` -> a fresh, empty store; `factory.replica(store)` -> another
    handle on the same state, as a second replica of the service would hold (memory: the
    same object, since that state lives in one process)."""

    def __init__(self, kind: str, redis_url: str | None) -> None:
        self.kind = kind
        self.redis_url = redis_url
        self.made: list[PresenceStore] = []
        self._how: dict[int, tuple[str, float]] = {}

    def __call__(self, retention_s: float = RETENTION) -> PresenceStore:
        if self.kind == "memory":
            store: PresenceStore = MemoryPresenceStore(retention_s)
        else:
            prefix = f"{KEY_PREFIX}ps{secrets.token_hex(4)}:"
            store = self._redis(prefix, retention_s)
        self.made.append(store)
        return store

    def replica(self, store: PresenceStore) -> PresenceStore:
        if self.kind == "memory":
            return store
        other = self._redis(*self._how[id(store)])
        self.made.append(other)
        return other

    def _redis(self, prefix: str, retention_s: float) -> RedisPresenceStore:
        backends = make_settings(cache="redis", redis_url=self.redis_url,
                                 key_prefix=prefix).backends
        store = RedisPresenceStore.from_settings(backends, retention_s)
        self._how[id(store)] = (prefix, retention_s)
        return store


@pytest.fixture(params=["memory", "redis"])
async def adapter(request):
    """A Factory of fresh, empty stores. Every store it made is closed."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    factory = Factory(request.param, url)
    yield factory
    for store in factory.made:
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


async def test_ids_and_times_come_back_exactly(store):
    # Ids are opaque to the store (spaces and colons included); times are not rounded.
    user, device = "u: 1 2", "d 3:4"
    now = T + 0.1 + 1e-7
    t = await store.heartbeat(user, device, now, now + TTL / 3)
    assert t.presence == UserPresence(user, True, now, None)
    assert await store.expire(now + TTL, 100) == [offline(user, now + TTL / 3, now)]
    assert await store.get([user], now + TTL) == [offline(user, now + TTL / 3, now)]


async def test_a_replica_sees_what_another_wrote(adapter):
    a = adapter()
    b = adapter.replica(a)
    await a.heartbeat("u", "phone", T, T + TTL)
    assert await b.get(["u"], T + 1) == [UserPresence("u", True, T, None)]
    t = await b.heartbeat("u", "laptop", T + 2, T + 2 + TTL)
    assert not t.changed and t.presence.since == T
    t = await a.sign_off("u", "laptop", T + 3)
    assert not t.changed and t.presence.online
    t = await b.sign_off("u", "phone", T + 4)
    assert t.changed and t.presence == offline("u", T + 4, T + 4)
    assert await a.get(["u"], T + 5) == [offline("u", T + 4, T + 4)]


async def test_concurrent_heartbeats_report_coming_online_once(adapter):
    replicas = [adapter()]
    replicas += [adapter.replica(replicas[0]) for _ in range(3)]
    users = [f"user{i}" for i in range(50)]
    results = await in_batches([r.heartbeat(u, f"device{k}", T, T + TTL)
                                for u in users for k, r in enumerate(replicas)])
    changed = [t.presence.user_id for t in results if t.changed]
    assert sorted(changed) == sorted(users)


async def test_replicas_sweeping_at_once_report_each_expiry_once(adapter):
    replicas = [adapter()]
    replicas += [adapter.replica(replicas[0]) for _ in range(3)]
    users = [f"user{i}" for i in range(300)]
    # Two devices each, so a user is reported only by the sweep that drops the later lease.
    await in_batches([replicas[0].heartbeat(u, d, T + i % 7, T + i % 7 + TTL)
                      for i, u in enumerate(users) for d in ("a", "b")])

    async def sweep_until_empty(store) -> list[UserPresence]:
        got: list[UserPresence] = []
        while batch := await store.expire(T + 100, 16):
            got += batch
            await asyncio.sleep(0)
        return got

    reports = [p for got in await asyncio.gather(*map(sweep_until_empty, replicas))
               for p in got]
    assert sorted(p.user_id for p in reports) == sorted(users)
    assert all(p == offline(p.user_id, p.last_seen + TTL, p.last_seen) for p in reports)
    assert await replicas[1].expire(T + 1000, 1000) == []


async def test_a_large_backlog_is_swept_up_to_the_limit(store):
    # More than the Redis adapter sweeps in one script, so its chunks must add up.
    await in_batches([store.heartbeat(f"user{i}", "d", T + i / 1000, T + i / 1000 + TTL)
                      for i in range(1200)])
    first = await store.expire(T + 100, 1100)
    assert [p.user_id for p in first] == [f"user{i}" for i in range(1100)]
    rest = await store.expire(T + 100, 1100)
    assert [p.user_id for p in rest] == [f"user{i}" for i in range(1100, 1200)]


async def in_batches(calls, size: int = 50) -> list:
    # Concurrent, but not more at once than a busy test machine serves well within the
    # Redis client's timeouts.
    out = []
    for i in range(0, len(calls), size):
        out += await asyncio.gather(*calls[i:i + size])
    return out
