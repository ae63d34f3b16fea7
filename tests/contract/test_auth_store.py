"""The auth store contract: one suite, run against every adapter (memory, sqlite, postgres)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import pathlib
import sqlite3
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from services.auth.memory import MemoryAuthStore
from services.auth.postgres import PostgresAuthStore
from services.auth.sqlite import SqliteAuthStore
from services.auth.store import (
    AuthStore,
    DevicePage,
    DeviceRow,
    OneTimePrekeyRow,
    RefreshTokenRow,
    SignedPrekeyRow,
    UserRow,
)
from tests.support.outbox import postgres_outbox, sqlite_outbox
from tests.support.postgres import open_test_database
from zynk.auth.v1 import auth_pb2

PG_MIGRATIONS = pathlib.Path(__file__).parents[2] / "services/auth/migrations/postgres"


@dataclasses.dataclass
class Adapter:
    store: AuthStore
    events: Callable[[], Awaitable[list[tuple[str, ...]]]]  # (event id, topic, key, type)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def adapter(request, tmp_path):
    if request.param == "memory":
        store = MemoryAuthStore()

        async def events():
            return [(e, t, k, p.DESCRIPTOR.full_name) for e, t, k, p in store.events]
    elif request.param == "sqlite":
        store = await SqliteAuthStore.open(tmp_path / "auth.sqlite3")
        events = functools.partial(sqlite_outbox, store.db)
    else:
        # Asked for here, not as a parameter of the fixture, so that the other adapters
        # still run where PostgreSQL is absent.
        url = request.getfixturevalue("postgres_url")
        store = PostgresAuthStore(await open_test_database(url, [PG_MIGRATIONS],
                                                           schema=f"auth_{uuid.uuid4().hex}"))
        events = functools.partial(postgres_outbox, store.db)
    yield Adapter(store, events)
    await store.close()


class Boom(Exception):
    pass


def user(name: str, t: float = 1000.0) -> UserRow:
    return UserRow(str(uuid.uuid4()), name, name.title(), "$argon2id$fake", t)


def device(u: UserRow, t: float, **kw) -> DeviceRow:
    return DeviceRow(str(uuid.uuid4()), u.id, kw.pop("display_name", ""), t, t, **kw)


def spk(key_id: int = 1, t: float = 1000.0) -> SignedPrekeyRow:
    return SignedPrekeyRow(key_id, bytes([key_id]) * 32, bytes([key_id]) * 64, t)


def otpks(*ids: int) -> list[OneTimePrekeyRow]:
    return [OneTimePrekeyRow(i, i.to_bytes(4, "big") * 8) for i in ids]


async def setup_user(store: AuthStore, name: str, *devices: DeviceRow | float):
    u = user(name)
    rows = []
    async with store.transaction() as tx:
        assert await tx.insert_user(u)
        for d in devices:
            row = d if isinstance(d, DeviceRow) else device(u, d)
            row = dataclasses.replace(row, user_id=u.id)
            await tx.insert_device(row)
            rows.append(row)
    return u, rows


async def with_keys(store: AuthStore, d: DeviceRow, *ids: int) -> None:
    async with store.transaction() as tx:
        await tx.set_identity_key(d.id, b"I" * 32)
        await tx.set_signed_prekey(d.id, spk())
        await tx.add_one_time_prekeys(d.id, otpks(*ids), 1000.0)


# -- users ---------------------------------------------------------------------------------


async def test_users(adapter):
    s = adapter.store
    u = user("alice")
    async with s.transaction() as tx:
        assert await tx.insert_user(u)
        assert await tx.get_user_by_username("alice") == u
    assert await s.get_user(u.id) == u
    assert await s.get_user_by_username("alice") == u
    assert await s.get_user("nope") is None and await s.get_user_by_username("bob") is None
    async with s.transaction() as tx:
        assert not await tx.insert_user(user("alice"))  # taken: no write, no error
        await tx.set_password_hash(u.id, "$argon2id$new")
    assert (await s.get_user(u.id)).password_hash == "$argon2id$new"


async def test_a_failed_transaction_writes_nothing(adapter):
    s = adapter.store
    u = user("carol")
    with pytest.raises(Boom):
        async with s.transaction() as tx:
            await tx.insert_user(u)
            await tx.add_event("users.registered", u.id, auth_pb2.User(name="users/x"), "e1")
            raise Boom
    assert await s.get_user(u.id) is None and await s.get_user_by_username("carol") is None
    assert await adapter.events() == []
    async with s.transaction() as tx:  # the store is still usable
        assert await tx.insert_user(u)
        await tx.add_event("users.registered", u.id, auth_pb2.User(name="users/x"), "e2")
    assert await adapter.events() == [("e2", "users.registered", u.id, "zynk.auth.v1.User")]


# -- devices -------------------------------------------------------------------------------


async def test_devices_and_keyset_pagination(adapter):
    s = adapter.store
    u, devs = await setup_user(s, "dave", 1.0, 2.0, 2.0, 3.0, 4.0)
    _, others = await setup_user(s, "erin", 2.5)
    assert await s.get_device(devs[0].id) == devs[0]
    async with s.transaction() as tx:
        await tx.set_device_display_name(devs[0].id, "phone")
        await tx.touch_device(devs[0].id, 99.0)
        await tx.revoke_device(devs[3].id, 50.0, "test")
    d0 = await s.get_device(devs[0].id)
    assert (d0.display_name, d0.last_seen_time) == ("phone", 99.0)
    expected = sorted(devs, key=lambda d: (d.create_time, d.id))
    got, after = [], None
    while True:
        page = await s.list_devices(u.id, after=after, limit=2, include_revoked=True)
        got += page
        if len(page) < 2:
            break
        after = DevicePage(page[-1].create_time, page[-1].id)
    assert [d.id for d in got] == [d.id for d in expected]
    live = await s.list_devices(u.id, after=None, limit=10, include_revoked=False)
    assert [d.id for d in live] == [d.id for d in expected if d.id != devs[3].id]
    assert others[0].id not in {d.id for d in got}


async def test_revoke_withdraws_keys_and_refresh_family(adapter):
    s = adapter.store
    _, (d, keep) = await setup_user(s, "frank", 1.0, 2.0)
    await with_keys(s, d, 1, 2, 3)
    await with_keys(s, keep, 1)
    async with s.transaction() as tx:
        for i in range(3):
            await tx.insert_refresh_token(RefreshTokenRow(bytes([i]) * 32, d.id, d.user_id,
                                                          1.0, 1e12))
        await tx.insert_refresh_token(RefreshTokenRow(b"k" * 32, keep.id, keep.user_id, 1.0,
                                                      1e12))
    async with s.transaction() as tx:
        await tx.revoke_device(d.id, 77.0, "revoked_by_user")
    r = await s.get_device(d.id)
    assert r.revoked and r.revoke_time == 77.0 and r.revoke_reason == "revoked_by_user"
    assert r.identity_key == b"I" * 32 and r.signed_prekey is None and not r.has_keys
    assert await s.count_one_time_prekeys(d.id) == 0
    assert all([await s.get_refresh_token(bytes([i]) * 32) is None for i in range(3)])
    # The other device keeps everything.
    assert await s.count_one_time_prekeys(keep.id) == 1
    assert await s.get_refresh_token(b"k" * 32) is not None
    assert [x.id for x in await s.revoked_devices_since(77.0)] == [d.id]
    assert await s.revoked_devices_since(77.5) == []


# -- refresh tokens --------------------------------------------------------------------------


async def test_refresh_tokens(adapter):
    s = adapter.store
    _, (d,) = await setup_user(s, "grace", 1.0)
    t1 = RefreshTokenRow(b"1" * 32, d.id, d.user_id, 10.0, 100.0)
    t2 = RefreshTokenRow(b"2" * 32, d.id, d.user_id, 10.0, 200.0)
    async with s.transaction() as tx:
        await tx.insert_refresh_token(t1)
        await tx.insert_refresh_token(t2)
    assert await s.get_refresh_token(b"1" * 32) == t1
    async with s.transaction() as tx:
        assert await tx.mark_refresh_token_used(b"1" * 32, 50.0)
        assert not await tx.mark_refresh_token_used(b"1" * 32, 51.0)  # only once
        assert not await tx.mark_refresh_token_used(b"x" * 32, 51.0)
        assert (await tx.get_refresh_token(b"1" * 32)).used_time == 50.0
    assert (await s.get_refresh_token(b"1" * 32)).used_time == 50.0
    async with s.transaction() as tx:
        assert await tx.delete_expired_refresh_tokens(d.id, 150.0) == 1
    assert await s.get_refresh_token(b"1" * 32) is None
    assert await s.get_refresh_token(b"2" * 32) == t2


# -- keys ----------------------------------------------------------------------------------


async def test_keys(adapter):
    s = adapter.store
    u, (d1, d2, d3, d4) = await setup_user(s, "heidi", 1.0, 2.0, 3.0, 4.0)
    async with s.transaction() as tx:
        await tx.set_identity_key(d1.id, b"A" * 32)
        await tx.set_signed_prekey(d1.id, spk(1))
        await tx.set_signed_prekey(d1.id, spk(2, 2000.0))  # replaces
        await tx.add_one_time_prekeys(d1.id, otpks(5, 3, 9), 1000.0)
        assert await tx.one_time_prekey_ids(d1.id, [1, 3, 9, 10]) == {3, 9}
        assert await tx.count_one_time_prekeys(d1.id) == 3
        await tx.set_identity_key(d2.id, b"B" * 32)  # identity only: not claimable
        await with_keys_tx(tx, d3)
        await with_keys_tx(tx, d4)
        await tx.revoke_device(d4.id, 5.0, "x")
    r = await s.get_device(d1.id)
    assert r.identity_key == b"A" * 32 and r.signed_prekey == spk(2, 2000.0) and r.has_keys
    assert await s.count_one_time_prekeys(d1.id) == 3
    async with s.transaction() as tx:
        assert [d.id for d in await tx.claimable_devices(u.id)] == [d1.id, d3.id]
        claimed = [await tx.claim_one_time_prekey(d1.id) for _ in range(4)]
    assert claimed == [*otpks(3, 5, 9), None]
    assert await s.count_one_time_prekeys(d1.id) == 0


async def with_keys_tx(tx, d: DeviceRow) -> None:
    await tx.set_identity_key(d.id, b"C" * 32)
    await tx.set_signed_prekey(d.id, spk())


async def test_duplicate_one_time_prekey_ids_fail_the_transaction(adapter):
    s = adapter.store
    _, (d,) = await setup_user(s, "ivan", 1.0)
    await with_keys(s, d, 1, 2)
    # A bug in the caller: loud.
    with pytest.raises((KeyError, sqlite3.IntegrityError, asyncpg.UniqueViolationError)):
        async with s.transaction() as tx:
            await tx.add_one_time_prekeys(d.id, otpks(3, 2), 1000.0)
    assert await s.count_one_time_prekeys(d.id) == 2


async def test_concurrent_claims_hand_out_each_prekey_once(adapter):
    s = adapter.store
    _, (d,) = await setup_user(s, "judy", 1.0)
    await with_keys(s, d, *range(1, 16))

    async def claim():
        async with s.transaction() as tx:
            await asyncio.sleep(0)  # let the others pile up
            return await tx.claim_one_time_prekey(d.id)

    results = await asyncio.gather(*[claim() for _ in range(40)])
    got = [r.key_id for r in results if r is not None]
    assert sorted(got) == list(range(1, 16))  # every prekey exactly once
    assert results.count(None) == 25
    assert await s.count_one_time_prekeys(d.id) == 0


async def test_active_devices_lists_unrevoked_devices_of_existing_users(adapter):
    s = adapter.store
    u, (d1, d2) = await setup_user(s, "erin", 1000.0, 1001.0)
    lonely, _ = await setup_user(s, "frank")
    async with s.transaction() as tx:
        await tx.revoke_device(d1.id, 1002.0, "test")
    found = await s.active_devices([u.id, lonely.id, "no-such-user"])
    assert found == {u.id: [d2.id], lonely.id: []}
    assert await s.active_devices([]) == {}
