"""The auth service over real gRPC with PostgreSQL storage (backends.storage = "postgres").

The store-touching cases of test_auth_grpc.py run again here against this module's `auth`
and `auth_settings` fixtures (imported test functions use the fixtures of the module they
are collected in), and two more show what only a shared database can: replicas of the
service claiming from one prekey pool, and racing over one refresh token."""

from __future__ import annotations

import asyncio
import pathlib

import asyncpg
import grpc
import pytest

from services.runtime.config import Settings
from tests.integration.auth.test_auth_grpc import (  # noqa: F401  (collected here too)
    bearer,
    login,
    publish,
    signup,
    test_concurrent_claims_never_share_a_one_time_prekey,
    test_device_changes_are_published,
    test_devices_list_update_revoke,
    test_list_active_devices_is_internal_and_tracks_devices,
    test_logout_stops_the_device_at_once,
    test_publish_claim_and_run_x3dh,
    test_register_login_refresh_and_reuse,
    test_restart_keeps_revoked_devices_revoked,
    test_users_registered_event_reaches_the_bus,
)
from tests.integration.conftest import start_auth
from tests.support.auth import DeviceKeys, auth_test_settings
from tests.support.grpc_errors import error_details
from tests.support.postgres import on_postgres
from zynk.auth.v1 import auth_pb2 as pb

pytestmark = pytest.mark.timeout(60)


def postgres_settings(data_dir: pathlib.Path, url: str) -> Settings:
    return on_postgres(auth_test_settings(data_dir), url)


@pytest.fixture
def auth_settings(tmp_path, postgres_url):
    return postgres_settings(tmp_path, postgres_url)


@pytest.fixture(scope="module")
async def auth(tmp_path_factory, postgres_url):
    harness = await start_auth(postgres_settings(tmp_path_factory.mktemp("auth-pg"),
                                                 postgres_url))
    yield harness
    await harness.stop()


async def test_accounts_land_in_the_auth_schema(auth, postgres_url):
    who = await signup(auth)
    conn = await asyncpg.connect(postgres_url)
    try:
        username = await conn.fetchval("SELECT username FROM auth.users WHERE id = $1",
                                       who.user.name.split("/")[1])
    finally:
        await conn.close()
    assert username == who.user.username


async def test_replicas_hand_out_each_one_time_prekey_once(auth_settings):
    # Same settings: one signing key, one database.
    replicas = [await start_auth(auth_settings), await start_auth(auth_settings)]
    try:
        bob = await signup(replicas[0])
        keys = DeviceKeys.generate(20)
        await publish(replicas[0], bob, keys)
        callers = [await signup(replicas[i % 2]) for i in range(4)]

        async def claim(i: int):
            replica = replicas[i % 2]
            who = callers[i % len(callers)]
            return await replica.stub.ClaimKeyBundles(
                pb.ClaimKeyBundlesRequest(user=bob.user.name),
                metadata=bearer(who.tokens.access_token))

        responses = await asyncio.gather(*[claim(i) for i in range(50)])
        bundles = [b for r in responses for b in r.bundles]
        assert len(bundles) == 50
        handed = [b.one_time_prekey.key_id for b in bundles if b.HasField("one_time_prekey")]
        assert sorted(handed) == sorted(keys.one_time_prekeys)  # each of the 20 exactly once
        status = await replicas[1].stub.GetPrekeyStatus(pb.GetPrekeyStatusRequest(
            name=f"{bob.device.name}/prekeyStatus"), metadata=bearer(bob.tokens.access_token))
        assert status.one_time_prekey_count == 0
    finally:
        for r in replicas:
            await r.stop()


async def test_refresh_token_reuse_is_caught_across_replicas(auth_settings):
    a, b = await start_auth(auth_settings), await start_auth(auth_settings)
    try:
        who = await signup(a)
        # The same refresh token presented to both replicas at once: one rotation wins,
        # the other is a reuse and revokes the device.
        results = await asyncio.gather(*[
            r.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=who.tokens.refresh_token))
            for r in (a, b)], return_exceptions=True)
        [lost] = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert lost.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_details(lost)[0] == "REFRESH_TOKEN_REUSED"
        again = await login(a, who.user.username)
        devices = await b.stub.ListDevices(
            pb.ListDevicesRequest(parent="users/me", show_revoked=True),
            metadata=bearer(again.tokens.access_token))
        [mine] = [d for d in devices.devices if d.name == who.device.name]
        assert mine.HasField("revoke_time")
    finally:
        await a.stop()
        await b.stop()
