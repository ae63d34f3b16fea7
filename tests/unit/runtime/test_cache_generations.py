"""Generations.drop_after_commit and the read-through caches when the cache is unreachable:
a committed change is never failed by its drop, and reads fall back to the database."""

from __future__ import annotations

import pytest

from services.runtime.cache import Generations, MemoryCache
from services.runtime.errors import Unavailable
from tests.unit.group.conftest import env  # noqa: F401  (the group domain's fixture)


class FlakyCache(MemoryCache):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def _maybe_fail(self) -> None:
        if self.failures:
            self.failures -= 1
            raise Unavailable("the cache is unavailable", reason="BACKEND_UNAVAILABLE")

    async def get(self, key):
        self._maybe_fail()
        return await super().get(key)

    async def set(self, key, value, ttl_s):
        self._maybe_fail()
        await super().set(key, value, ttl_s)


async def test_drop_after_commit_retries_then_reports():
    cache = FlakyCache(failures=2)
    gens = Generations(cache, 60)
    assert await gens.drop_after_commit("k") is True
    cache.failures = 10
    assert await gens.drop_after_commit("k") is False


async def test_group_reads_fall_back_to_the_database_and_changes_commit(env):  # noqa: F811
    from services.group.domain import GroupDomain
    from services.runtime.errors import NotFound

    cache = FlakyCache(failures=0)
    domain = GroupDomain(env.store, env.users, env.relay, env.settings, cache=cache)
    owner, m = env.user(), env.user()
    gid = (await domain.create_group(owner, "team", "", False, [m.user_id])).group.id
    await domain.get_group(m, gid)  # cached
    cache.failures = 1000
    assert (await domain.get_group(m, gid)).group.member_count == 2  # from the database
    assert await domain.remove_members(owner, gid, [m.user_id]) == 1  # drop failed, logged
    with pytest.raises(NotFound):
        await domain.get_group(m, gid)  # still unreachable: the database answers

