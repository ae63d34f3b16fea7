"""The Cache contract, against the in-process LRU and Redis (a real server)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def key() -> str:
    return f"contract:{uuid.uuid4().hex}"


async def test_set_get_and_missing(process_backends, key):
    cache = process_backends.cache
    assert await cache.get(key) is None
    await cache.set(key, b"\x00profile\xff", ttl_s=60)
    assert await cache.get(key) == b"\x00profile\xff"
    await cache.set(key, b"v2", ttl_s=60)
    assert await cache.get(key) == b"v2"


async def test_entries_expire_after_their_ttl(process_backends, key):
    cache = process_backends.cache
    await cache.set(key, b"short", ttl_s=0.15)
    await cache.set(key + ":long", b"long", ttl_s=60)
    assert await cache.get(key) == b"short"
    await asyncio.sleep(0.3)
    assert await cache.get(key) is None
    assert await cache.get(key + ":long") == b"long"


async def test_delete_drops_several_keys_and_ignores_unknown_ones(process_backends, key):
    cache = process_backends.cache
    for i in range(3):
        await cache.set(f"{key}:{i}", b"x", ttl_s=60)
    await cache.delete(f"{key}:0", f"{key}:1", f"{key}:never")
    await cache.delete()
    assert [await cache.get(f"{key}:{i}") for i in range(3)] == [None, None, b"x"]


async def test_redis_key_prefixes_keep_deployments_apart(backend_settings, key):
    from services.runtime.backends import build_backends
    from tests.support.backends import KEY_PREFIX

    a = await build_backends(backend_settings(cache="redis"))
    b = await build_backends(backend_settings(cache="redis", key_prefix=KEY_PREFIX + "other:"))
    try:
        await a.cache.set(key, b"a", ttl_s=60)
        assert await b.cache.get(key) is None
        assert await a.cache.get(key) == b"a"
    finally:
        await a.close()
        await b.close()


async def test_a_burst_beyond_the_connection_pool_waits_instead_of_failing(process_backends,
                                                                           key):
    # 500 concurrent calls: more than a Redis client's pool holds (redis_backends.py).
    cache = process_backends.cache
    await asyncio.gather(*(cache.set(f"{key}:{i}", b"x", ttl_s=60) for i in range(500)))
    assert await asyncio.gather(*(cache.get(f"{key}:{i}") for i in range(500))) == [b"x"] * 500


async def test_generations_refuse_a_copy_read_before_a_drop(process_backends, key):
    from services.runtime.cache import Generations

    gens = Generations(process_backends.cache, ttl_s=60)
    token = await gens.token(key)  # a reader, before its database read
    await gens.set(key, token, b"v1")
    assert await gens.get(key) == b"v1"
    stale_token = await gens.token(key)  # another reader starts...
    await gens.drop(key)  # ...a change commits and drops the entry...
    assert await gens.get(key) is None
    await gens.set(key, stale_token, b"v1-stale")  # ...and the reader stores its old copy
    assert await gens.get(key) is None  # never served
    await gens.set(key, await gens.token(key), b"v2")
    assert await gens.get(key) == b"v2"
