"""The public User resource (what GetUser and LookupUser answer), read through the shared
cache (seed §6.2: profiles, 1 hour; `auth.profile_cache_ttl_s`).

Only that response proto is cached: name, username, display_name, create_time. Never the
password hash, tokens, devices or keys (the row those live in is never serialised here).
Authorisation is the domain's and runs before the cache is consulted, on every call.

Keys (under the cache's prefix, `<key_prefix>cache:` on Redis), values a serialized
zynk.auth.v1.User behind the generation token (runtime/cache.py `Generations`, which keeps a
read racing a change from caching the old copy):
  auth:user:<user id>          GetUser
  auth:username:<username>     LookupUser (the stored lower-case handle)
Any write that changes what these return calls `drop(user id, usernames...)` after its commit
(today auth has none: users are only inserted; tests/unit/auth/test_profiles.py trips when
the store gains a write). Absence is never cached, so a new account is visible at once."""

from __future__ import annotations

from services.auth import names
from services.auth.store import AuthStore, UserRow
from services.runtime import logging as zlog
from services.runtime.cache import Cache, Generations
from services.runtime.errors import Unavailable
from services.runtime.pbtime import timestamp
from zynk.auth.v1 import auth_pb2

log = zlog.get("auth.profiles")

ID_PREFIX = "auth:user:"
USERNAME_PREFIX = "auth:username:"


def public_user(u: UserRow) -> auth_pb2.User:
    """The User resource any authenticated caller may see."""
    return auth_pb2.User(name=names.user_name(u.id), username=u.username,
                         display_name=u.display_name, create_time=timestamp(u.create_time))


class UserProfiles:
    def __init__(self, store: AuthStore, cache: Cache, ttl_s: float) -> None:
        self._store = store
        self._cache = Generations(cache, ttl_s)

    async def by_id(self, user_id: str) -> auth_pb2.User | None:
        return await self._read(ID_PREFIX + user_id, lambda: self._store.get_user(user_id))

    async def by_username(self, username: str) -> auth_pb2.User | None:
        return await self._read(USERNAME_PREFIX + username,
                                lambda: self._store.get_user_by_username(username))

    async def drop(self, user_id: str, *usernames: str) -> None:
        """After a committed change to the user (pass every username it had or has)."""
        keys = [ID_PREFIX + user_id, *(USERNAME_PREFIX + u for u in usernames)]
        if not await self._cache.drop_after_commit(*keys):
            log.error("profile cache entries not dropped; they may be stale until their TTL",
                      user_id=user_id)

    async def _read(self, key: str, load) -> auth_pb2.User | None:
        """From the cache when current, else the database (then cached). An unreachable
        cache falls back to the database."""
        try:
            raw = await self._cache.get(key)
            if raw is not None:
                return auth_pb2.User.FromString(raw)
            token = await self._cache.token(key)
        except Unavailable:
            row = await load()
            return None if row is None else public_user(row)
        row = await load()
        if row is None:
            return None
        user = public_user(row)
        try:
            await self._cache.set(key, token, user.SerializeToString())
        except Unavailable:
            pass
        return user
