"""The auth profile cache (services/auth/profiles.py) on MemoryCache and RedisCache: GetUser
and LookupUser hit within the TTL, expire after it, never serve a dropped or a racing stale
copy, never cache absence, and hold only the public User — seen alike by two auth domains
(replicas) sharing the cache and the store."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from services.auth.domain import AuthDomain
from services.auth.profiles import ID_PREFIX, USERNAME_PREFIX, UserProfiles
from services.runtime.cache import Generations
from services.runtime.context import Principal
from services.runtime.errors import NotFound
from tests.support.auth import auth_test_settings
from tests.unit.auth.conftest import PASSWORD, make_env

pytestmark = pytest.mark.timeout(30)


class CountingStore:
    def __init__(self, store) -> None:
        self._store = store
        self.reads = 0
        self.pause: asyncio.Event | None = None
        self.in_read = asyncio.Event()

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def _count(self, row):
        self.reads += 1
        if self.pause is not None:
            self.in_read.set()
            await self.pause.wait()
        return row

    async def get_user(self, user_id):
        return await self._count(await self._store.get_user(user_id))

    async def get_user_by_username(self, username):
        return await self._count(await self._store.get_user_by_username(username))


class Replicas:
    def __init__(self, tmp_path, cache, ttl_s: float) -> None:
        self.env = make_env(auth_test_settings(tmp_path, profile_cache_ttl_s=ttl_s))
        self.cache = cache
        self.ttl_s = ttl_s
        self.a_store = CountingStore(self.env.store)
        self.b_store = CountingStore(self.env.store)
        self.a, self.b = (AuthDomain(s, self.env.issuer, self.env.limiter,
                                     self.env.revocations, self.env.settings, cache=cache)
                          for s in (self.a_store, self.b_store))
        self.caller = Principal(user_id="someone", device_id="d")

    def profiles(self, store) -> UserProfiles:
        return UserProfiles(store, self.cache, self.ttl_s)


@pytest.fixture
def replicas(process_backends, tmp_path):
    return Replicas(tmp_path, process_backends.cache, ttl_s=3600)


async def test_hits_within_the_ttl_are_served_from_the_cache_on_every_replica(replicas):
    r = replicas
    user = await r.a.register("Olivia", PASSWORD, "Liv", "10.0.0.1")
    by_id = await r.a.get_user(r.caller, user.id)
    by_name = await r.a.lookup_user("OLIVIA")
    assert by_id == by_name
    assert (by_id.name, by_id.username, by_id.display_name) == (
        f"users/{user.id}", "olivia", "Liv")
    reads = r.a_store.reads
    assert await r.a.get_user(r.caller, user.id) == by_id
    assert await r.b.get_user(r.caller, user.id) == by_id
    assert await r.b.lookup_user("olivia") == by_name
    assert r.a_store.reads == reads and r.b_store.reads == 0
    me = Principal(user_id=user.id, device_id="d")
    assert await r.b.get_user(me, "me") == by_id  # `me` resolves before the cache


async def test_entries_expire_after_the_ttl(process_backends, tmp_path):
    r = Replicas(tmp_path, process_backends.cache, ttl_s=0.2)
    user = await r.a.register("peggy", PASSWORD, "", "10.0.0.1")
    await r.a.get_user(r.caller, user.id)
    await r.a.lookup_user("peggy")
    reads = r.a_store.reads
    await r.a.get_user(r.caller, user.id)
    await r.a.lookup_user("peggy")
    assert r.a_store.reads == reads
    await asyncio.sleep(0.35)
    await r.a.get_user(r.caller, user.id)
    await r.a.lookup_user("peggy")
    assert r.a_store.reads == reads + 2


async def test_absence_is_not_cached_so_a_new_account_is_found_at_once(replicas):
    r = replicas
    with pytest.raises(NotFound):
        await r.b.lookup_user("rupert")
    user = await r.a.register("rupert", PASSWORD, "", "10.0.0.1")
    assert (await r.b.lookup_user("rupert")).name == f"users/{user.id}"
    assert (await r.b.get_user(r.caller, user.id)).username == "rupert"


async def test_a_drop_after_a_change_is_seen_at_once_by_the_other_replica(replicas):
    """Auth has no profile-changing RPC yet: a change is made to the row directly, as a
    future rename would in its transaction, then dropped as profiles.py requires."""
    r = replicas
    user = await r.a.register("sybil", PASSWORD, "Syb", "10.0.0.1")
    await r.b.get_user(r.caller, user.id)
    await r.b.lookup_user("sybil")
    renamed = dataclasses.replace(user, username="sybil2", display_name="S")
    r.env.store._state.users[user.id] = renamed
    await r.profiles(r.a_store).drop(user.id, "sybil", "sybil2")
    got = await r.b.get_user(r.caller, user.id)
    assert (got.username, got.display_name) == ("sybil2", "S")
    with pytest.raises(NotFound):
        await r.b.lookup_user("sybil")
    assert (await r.b.lookup_user("sybil2")).display_name == "S"
    del r.env.store._state.users[user.id]  # a deletion
    await r.profiles(r.a_store).drop(user.id, "sybil2")
    with pytest.raises(NotFound):
        await r.b.get_user(r.caller, user.id)
    with pytest.raises(NotFound):
        await r.b.lookup_user("sybil2")


async def test_a_read_racing_a_change_never_caches_what_the_change_replaced(replicas):
    r = replicas
    user = await r.a.register("trent", PASSWORD, "old", "10.0.0.1")
    r.b_store.pause = asyncio.Event()
    reader = asyncio.create_task(r.b.get_user(r.caller, user.id))
    await asyncio.wait_for(r.b_store.in_read.wait(), 5)
    r.env.store._state.users[user.id] = dataclasses.replace(user, display_name="new")
    await r.profiles(r.a_store).drop(user.id, "trent")
    r.b_store.pause.set()
    assert (await reader).display_name == "old"  # it read before the change
    r.b_store.pause = None
    assert (await r.b.get_user(r.caller, user.id)).display_name == "new"
    assert (await r.a.get_user(r.caller, user.id)).display_name == "new"


async def test_only_the_public_user_is_cached(replicas):
    r = replicas
    user = await r.a.register("victor", PASSWORD, "Vic", "10.0.0.1")
    login = await r.a.login("victor", PASSWORD, "phone", "10.0.0.1")
    await r.a.get_user(r.caller, user.id)
    await r.a.lookup_user("victor")
    gens = Generations(r.cache, 3600)
    for key in (ID_PREFIX + user.id, USERNAME_PREFIX + "victor"):
        raw = await gens.get(key)
        assert raw is not None
        assert user.password_hash.encode() not in raw
        assert login.tokens.refresh_token.encode() not in raw
        assert login.device.id.encode() not in raw
        assert b"argon2" not in raw
