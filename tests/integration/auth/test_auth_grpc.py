"""The auth service over real gRPC, with the real runtime around it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid

import grpc
import jwt
import pytest
import x3dh
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import field_mask_pb2

from services.auth.signing import public_jwk
from services.runtime.revocations import MemoryRevocationList
from tests.integration.conftest import AuthHarness, start_auth
from tests.support.auth import DeviceKeys, auth_test_settings, new_x3dh_state
from tests.support.grpc_errors import error_details, fails
from zynk.auth.v1 import auth_pb2
from zynk.events.v1 import events_pb2

PASSWORD = "a long enough password"
pb = auth_pb2


# -- helpers -------------------------------------------------------------------------------


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def signup(auth: AuthHarness, username: str | None = None,
                 device: str = "phone") -> pb.LoginResponse:
    username = username or unique("user")
    await auth.stub.Register(pb.RegisterRequest(username=username, password=PASSWORD))
    return await auth.stub.Login(pb.LoginRequest(username=username, password=PASSWORD,
                                                 device_display_name=device))


async def login(auth: AuthHarness, username: str, device: str = "") -> pb.LoginResponse:
    return await auth.stub.Login(pb.LoginRequest(username=username, password=PASSWORD,
                                                 device_display_name=device))


async def publish(auth: AuthHarness, who: pb.LoginResponse, keys: DeviceKeys):
    return await auth.stub.PublishDeviceKeys(pb.PublishDeviceKeysRequest(
        device=who.device.name, identity_key=keys.identity_key,
        signed_prekey=pb.SignedPrekey(key_id=keys.signed_prekey_id,
                                      public_key=keys.signed_prekey, signature=keys.signature),
        one_time_prekeys=[pb.OneTimePrekey(key_id=i, public_key=k)
                          for i, k in keys.one_time_prekeys.items()]),
        metadata=bearer(who.tokens.access_token))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, claims: dict, sign) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def claims_for(who: pb.LoginResponse, **override) -> dict:
    now = int(time.time())
    return {"iss": "zynk", "aud": "zynk-api", "sub": who.user.name.split("/")[1],
            "sid": who.device.name.split("/")[3], "jti": uuid.uuid4().hex, "iat": now,
            "exp": now + 300, **override}


def server_key(auth: AuthHarness) -> Ed25519PrivateKey:
    return serialization.load_pem_private_key(auth.key_path.read_bytes(), password=None)


# -- accounts and tokens ----------------------------------------------------------------------


async def test_register_login_refresh_and_reuse(auth):
    name = unique("Alice")
    reg = await auth.stub.Register(pb.RegisterRequest(username=name, password=PASSWORD,
                                                      display_name="Alice"))
    assert reg.user.username == name.lower() and reg.user.name.startswith("users/")
    err = await fails(auth.stub.Register(pb.RegisterRequest(username=name.upper(),
                                                            password=PASSWORD)),
                      grpc.StatusCode.ALREADY_EXISTS)
    assert error_details(err)[0] == "USERNAME_TAKEN"

    first = await login(auth, name, "phone")
    assert first.user.name == reg.user.name and first.device.display_name == "phone"
    me = await auth.stub.GetUser(pb.GetUserRequest(name="users/me"),
                                 metadata=bearer(first.tokens.access_token))
    assert me.user.display_name == "Alice"

    second = await auth.stub.RefreshToken(pb.RefreshTokenRequest(
        refresh_token=first.tokens.refresh_token))
    assert second.tokens.refresh_token != first.tokens.refresh_token
    await auth.stub.GetUser(pb.GetUserRequest(name=reg.user.name),
                            metadata=bearer(second.tokens.access_token))

    # The first refresh token is presented again: the family and the device are revoked.
    err = await fails(auth.stub.RefreshToken(pb.RefreshTokenRequest(
        refresh_token=first.tokens.refresh_token)), grpc.StatusCode.UNAUTHENTICATED)
    assert error_details(err)[0] == "REFRESH_TOKEN_REUSED"
    await fails(auth.stub.RefreshToken(pb.RefreshTokenRequest(
        refresh_token=second.tokens.refresh_token)), grpc.StatusCode.UNAUTHENTICATED)
    err = await fails(auth.stub.GetUser(pb.GetUserRequest(name="users/me"),
                                        metadata=bearer(second.tokens.access_token)),
                      grpc.StatusCode.UNAUTHENTICATED)
    assert error_details(err)[0] == "DEVICE_REVOKED"


async def test_login_failures_are_generic(auth):
    u = await signup(auth)
    e1 = await fails(auth.stub.Login(pb.LoginRequest(username=u.user.username,
                                                     password="wrong password")),
                     grpc.StatusCode.UNAUTHENTICATED)
    e2 = await fails(auth.stub.Login(pb.LoginRequest(username=unique("ghost"),
                                                     password="wrong password")),
                     grpc.StatusCode.UNAUTHENTICATED)
    assert e1.details() == e2.details() == "invalid username or password"


async def test_users_registered_event_reaches_the_bus(auth):
    reg = await auth.stub.Register(pb.RegisterRequest(username=unique("evt"), password=PASSWORD))
    user_id = reg.user.name.split("/")[1]
    for _ in range(100):
        if any(e.key == user_id for e in auth.events):
            break
        await asyncio.sleep(0.02)
    [event] = [e for e in auth.events if e.key == user_id]
    assert event.topic == "users.registered"
    assert event.type_name == "zynk.events.v1.EventEnvelope"
    envelope = events_pb2.EventEnvelope.FromString(event.payload)
    assert envelope.metadata.event_id == event.event_id
    assert envelope.user_registered.user == reg.user.name
    assert envelope.user_registered.username == reg.user.username


async def test_logout_stops_the_device_at_once(auth):
    u = await signup(auth)
    md = bearer(u.tokens.access_token)
    await auth.stub.Logout(pb.LogoutRequest(), metadata=md)
    err = await fails(auth.stub.GetUser(pb.GetUserRequest(name="users/me"), metadata=md),
                      grpc.StatusCode.UNAUTHENTICATED)
    assert error_details(err)[0] == "DEVICE_REVOKED"
    await fails(auth.stub.RefreshToken(pb.RefreshTokenRequest(
        refresh_token=u.tokens.refresh_token)), grpc.StatusCode.UNAUTHENTICATED)


async def test_jwks_is_public_and_matches_the_signing_key(auth):
    resp = await auth.stub.GetJwks(pb.GetJwksRequest())
    [key] = resp.keys
    expected = public_jwk(server_key(auth).public_key())
    assert {f: getattr(key, f) for f in ("kty", "crv", "x", "kid", "alg", "use")} == expected


async def test_lookup_and_get_user(auth):
    u = await signup(auth, unique("Bob"))
    md = bearer(u.tokens.access_token)
    found = await auth.stub.LookupUser(pb.LookupUserRequest(username=u.user.username.upper()),
                                       metadata=md)
    assert found.user.name == u.user.name
    await fails(auth.stub.LookupUser(pb.LookupUserRequest(username="nobody_at_all"),
                                     metadata=md), grpc.StatusCode.NOT_FOUND)
    await fails(auth.stub.GetUser(pb.GetUserRequest(name=f"users/{uuid.uuid4()}"),
                                  metadata=md), grpc.StatusCode.NOT_FOUND)


# -- who may call -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [
    "no_token", "not_bearer", "expired", "unknown_key", "other_key_same_kid", "alg_none",
    "hs256_public_key_as_secret", "typ_jwt", "wrong_audience", "wrong_issuer",
    "missing_sid", "refresh_token_as_access_token", "garbage",
])
async def test_protected_rpcs_refuse_bad_tokens(auth, case):
    u = await signup(auth)
    key = server_key(auth)
    kid = public_jwk(key.public_key())["kid"]
    other = Ed25519PrivateKey.generate()
    good_header = {"alg": "EdDSA", "typ": "at+jwt", "kid": kid}
    pub_raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
    missing_sid = claims_for(u)
    del missing_sid["sid"]
    tokens = {
        "no_token": None,
        "not_bearer": None,
        "expired": jwt.encode(claims_for(u, iat=int(time.time()) - 4000,
                                         exp=int(time.time()) - 3000),
                              key, algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt"}),
        "unknown_key": jwt.encode(claims_for(u), other, algorithm="EdDSA",
                                  headers={"kid": public_jwk(other.public_key())["kid"],
                                           "typ": "at+jwt"}),
        "other_key_same_kid": forge(good_header, claims_for(u), other.sign),
        "alg_none": forge({"alg": "none", "typ": "at+jwt", "kid": kid}, claims_for(u),
                          lambda _: b""),
        "hs256_public_key_as_secret": forge(
            {"alg": "HS256", "typ": "at+jwt", "kid": kid}, claims_for(u),
            lambda m: hmac.new(pub_raw, m, hashlib.sha256).digest()),
        "typ_jwt": jwt.encode(claims_for(u), key, algorithm="EdDSA",
                              headers={"kid": kid, "typ": "JWT"}),
        "wrong_audience": jwt.encode(claims_for(u, aud="someone-else"), key,
                                     algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt"}),
        "wrong_issuer": jwt.encode(claims_for(u, iss="evil"), key, algorithm="EdDSA",
                                   headers={"kid": kid, "typ": "at+jwt"}),
        "missing_sid": jwt.encode(missing_sid, key, algorithm="EdDSA",
                                  headers={"kid": kid, "typ": "at+jwt"}),
        "refresh_token_as_access_token": u.tokens.refresh_token,
        "garbage": "not.a.token",
    }
    if case == "no_token":
        md = ()
    elif case == "not_bearer":
        md = (("authorization", f"Basic {u.tokens.access_token}"),)
    else:
        md = bearer(tokens[case])
    for call in (auth.stub.GetUser(pb.GetUserRequest(name="users/me"), metadata=md),
                 auth.stub.ListDevices(pb.ListDevicesRequest(parent="users/me"), metadata=md),
                 auth.stub.Logout(pb.LogoutRequest(), metadata=md)):
        await fails(call, grpc.StatusCode.UNAUTHENTICATED)
    # The real token still works (and Logout above did not go through).
    await auth.stub.GetUser(pb.GetUserRequest(name="users/me"),
                            metadata=bearer(u.tokens.access_token))


# -- validation ----------------------------------------------------------------------------------


async def test_bad_input_gets_invalid_argument_with_field_violations(auth):
    err = await fails(auth.stub.Register(pb.RegisterRequest(username="1x", password="short")),
                      grpc.StatusCode.INVALID_ARGUMENT)
    reason, violations = error_details(err)
    assert reason == "VALIDATION_FAILED"
    assert {f for f, _ in violations} == {"username", "password"}

    name = unique("Carol")
    err = await fails(auth.stub.Register(pb.RegisterRequest(
        username=name, password=f"my {name.lower()} pw!")), grpc.StatusCode.INVALID_ARGUMENT)
    assert error_details(err) == ("PASSWORD_CONTAINS_USERNAME",
                            [("password", "must not contain the username")])

    u = await signup(auth)
    md = bearer(u.tokens.access_token)
    err = await fails(auth.stub.PublishDeviceKeys(pb.PublishDeviceKeysRequest(
        device=u.device.name, identity_key=b"short",
        one_time_prekeys=[pb.OneTimePrekey(key_id=1, public_key=b"\x01" * 31)]), metadata=md),
        grpc.StatusCode.INVALID_ARGUMENT)
    fields = {f for f, _ in error_details(err)[1]}
    assert fields == {"identity_key", "one_time_prekeys[0].public_key"}
    await fails(auth.stub.ListDevices(pb.ListDevicesRequest(parent="users/me", page_size=101),
                                      metadata=md), grpc.StatusCode.INVALID_ARGUMENT)
    err = await fails(auth.stub.UpdateDevice(pb.UpdateDeviceRequest(
        device=pb.Device(name="devices/nope", display_name="x")), metadata=md),
        grpc.StatusCode.INVALID_ARGUMENT)
    assert error_details(err)[1][0][0] == "device.name"


# -- devices -------------------------------------------------------------------------------------


async def test_devices_list_update_revoke(auth):
    first = await signup(auth, device="d0")
    username = first.user.username
    others = [await login(auth, username, f"d{i}") for i in range(1, 5)]
    md = bearer(first.tokens.access_token)

    names, token = [], ""
    while True:
        page = await auth.stub.ListDevices(pb.ListDevicesRequest(
            parent="users/me", page_size=2, page_token=token), metadata=md)
        names += [d.name for d in page.devices]
        token = page.next_page_token
        if not token:
            break
    assert sorted(names) == sorted([first.device.name] + [o.device.name for o in others])

    upd = await auth.stub.UpdateDevice(pb.UpdateDeviceRequest(
        device=pb.Device(name=others[0].device.name, display_name="renamed"),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"])), metadata=md)
    assert upd.device.display_name == "renamed"
    await fails(auth.stub.UpdateDevice(pb.UpdateDeviceRequest(
        device=pb.Device(name=others[0].device.name, display_name="x"),
        update_mask=field_mask_pb2.FieldMask(paths=["has_keys"])), metadata=md),
        grpc.StatusCode.INVALID_ARGUMENT)

    # Revoke d1 from d0: d1's next call is refused at once.
    victim = others[0]
    vmd = bearer(victim.tokens.access_token)
    await auth.stub.GetUser(pb.GetUserRequest(name="users/me"), metadata=vmd)
    revoked = await auth.stub.RevokeDevice(pb.RevokeDeviceRequest(name=victim.device.name),
                                           metadata=md)
    assert revoked.device.HasField("revoke_time") and not revoked.device.has_keys
    err = await fails(auth.stub.GetUser(pb.GetUserRequest(name="users/me"), metadata=vmd),
                      grpc.StatusCode.UNAUTHENTICATED)
    assert error_details(err)[0] == "DEVICE_REVOKED"
    await fails(auth.stub.RefreshToken(pb.RefreshTokenRequest(
        refresh_token=victim.tokens.refresh_token)), grpc.StatusCode.UNAUTHENTICATED)
    live = await auth.stub.ListDevices(pb.ListDevicesRequest(parent="users/me"), metadata=md)
    assert victim.device.name not in {d.name for d in live.devices}
    every = await auth.stub.ListDevices(pb.ListDevicesRequest(parent="users/me",
                                                              show_revoked=True), metadata=md)
    assert victim.device.name in {d.name for d in every.devices}

    # Someone else's devices are off limits.
    stranger = await signup(auth)
    smd = bearer(stranger.tokens.access_token)
    await fails(auth.stub.RevokeDevice(pb.RevokeDeviceRequest(name=first.device.name),
                                       metadata=smd), grpc.StatusCode.PERMISSION_DENIED)
    await fails(auth.stub.ListDevices(pb.ListDevicesRequest(parent=first.user.name),
                                      metadata=smd), grpc.StatusCode.PERMISSION_DENIED)
    await auth.stub.GetUser(pb.GetUserRequest(name="users/me"), metadata=md)


# -- keys ----------------------------------------------------------------------------------------


async def test_publish_claim_and_run_x3dh(auth):
    bob = await signup(auth)
    bob_keys = DeviceKeys.generate(3)
    resp = await publish(auth, bob, bob_keys)
    assert resp.one_time_prekey_count == 3
    bmd = bearer(bob.tokens.access_token)
    status = await auth.stub.GetPrekeyStatus(pb.GetPrekeyStatusRequest(
        name=f"{bob.device.name}/prekeyStatus"), metadata=bmd)
    assert status.one_time_prekey_count == 3
    assert status.signed_prekey_id == bob_keys.signed_prekey_id

    alice = await signup(auth)
    amd = bearer(alice.tokens.access_token)
    # Alice may not publish for Bob's device, nor read its status.
    await fails(auth.stub.PublishDeviceKeys(pb.PublishDeviceKeysRequest(
        device=bob.device.name, identity_key=bob_keys.identity_key), metadata=amd),
        grpc.StatusCode.PERMISSION_DENIED)
    await fails(auth.stub.GetPrekeyStatus(pb.GetPrekeyStatusRequest(
        name=f"{bob.device.name}/prekeyStatus"), metadata=amd),
        grpc.StatusCode.PERMISSION_DENIED)
    # A forged signed-prekey signature is refused.
    bad = DeviceKeys.generate(0)
    err = await fails(auth.stub.PublishDeviceKeys(pb.PublishDeviceKeysRequest(
        device=alice.device.name, identity_key=bad.identity_key,
        signed_prekey=pb.SignedPrekey(key_id=1, public_key=bad.signed_prekey,
                                      signature=bytes(64))), metadata=amd),
        grpc.StatusCode.INVALID_ARGUMENT)
    assert error_details(err)[0] == "SIGNATURE_INVALID"

    claimed = await auth.stub.ClaimKeyBundles(pb.ClaimKeyBundlesRequest(user=bob.user.name),
                                              metadata=amd)
    [bundle] = claimed.bundles
    assert bundle.device == bob.device.name and bundle.HasField("one_time_prekey")

    # The bundle is good enough for a real X3DH handshake with Bob's device.
    alice_state = new_x3dh_state()
    secret_a, ad_a, header = await alice_state.get_shared_secret_active(x3dh.Bundle(
        identity_key=bundle.identity_key, signed_pre_key=bundle.signed_prekey.public_key,
        signed_pre_key_sig=bundle.signed_prekey.signature,
        pre_keys=frozenset({bundle.one_time_prekey.public_key})))
    secret_b, ad_b, _ = await bob_keys.state.get_shared_secret_passive(header)
    assert secret_a == secret_b and ad_a == ad_b

    status = await auth.stub.GetPrekeyStatus(pb.GetPrekeyStatusRequest(
        name=f"{bob.device.name}/prekeyStatus"), metadata=bmd)
    assert status.one_time_prekey_count == 2
    # A duplicate id is refused without a partial write.
    await fails(auth.stub.PublishDeviceKeys(pb.PublishDeviceKeysRequest(
        device=bob.device.name, identity_key=bob_keys.identity_key,
        one_time_prekeys=[pb.OneTimePrekey(key_id=99, public_key=b"\x09" * 32),
                          pb.OneTimePrekey(key_id=2, public_key=b"\x02" * 32)]),
        metadata=bmd), grpc.StatusCode.ALREADY_EXISTS)
    status = await auth.stub.GetPrekeyStatus(pb.GetPrekeyStatusRequest(
        name=f"{bob.device.name}/prekeyStatus"), metadata=bmd)
    assert status.one_time_prekey_count == 2
    # A different identity key for the same device is refused.
    await fails(auth.stub.PublishDeviceKeys(pb.PublishDeviceKeysRequest(
        device=bob.device.name, identity_key=bad.identity_key), metadata=bmd),
        grpc.StatusCode.FAILED_PRECONDITION)

    # Revoking the device withdraws its keys: no bundle for it any more.
    await auth.stub.RevokeDevice(pb.RevokeDeviceRequest(name=bob.device.name), metadata=bmd)
    claimed = await auth.stub.ClaimKeyBundles(pb.ClaimKeyBundlesRequest(user=bob.user.name),
                                              metadata=amd)
    assert list(claimed.bundles) == []


async def test_concurrent_claims_never_share_a_one_time_prekey(auth):
    bob = await signup(auth)
    keys = DeviceKeys.generate(20)
    await publish(auth, bob, keys)
    callers = [await signup(auth) for _ in range(5)]

    async def claim(i: int):
        who = callers[i % len(callers)]
        return await auth.stub.ClaimKeyBundles(pb.ClaimKeyBundlesRequest(user=bob.user.name),
                                               metadata=bearer(who.tokens.access_token))

    responses = await asyncio.gather(*[claim(i) for i in range(50)])
    bundles = [b for r in responses for b in r.bundles]
    assert len(bundles) == 50 and all(b.device == bob.device.name for b in bundles)
    handed = [b.one_time_prekey.key_id for b in bundles if b.HasField("one_time_prekey")]
    assert sorted(handed) == sorted(keys.one_time_prekeys)  # each of the 20 exactly once
    without = [b for b in bundles if not b.HasField("one_time_prekey")]
    assert len(without) == 30
    assert all(b.identity_key == keys.identity_key
               and b.signed_prekey.public_key == keys.signed_prekey for b in without)
    for b in bundles:
        if b.HasField("one_time_prekey"):
            assert b.one_time_prekey.public_key == keys.one_time_prekeys[b.one_time_prekey.key_id]


# -- restart ---------------------------------------------------------------------------------------


@pytest.fixture
def auth_settings(tmp_path):
    """For tests that start their own instances (test_auth_postgres.py overrides it)."""
    return auth_test_settings(tmp_path)


async def test_restart_keeps_revoked_devices_revoked(auth_settings):
    settings = auth_settings
    first = await start_auth(settings)
    try:
        a = await signup(first)
        b = await login(first, a.user.username, "second")
        await first.stub.RevokeDevice(pb.RevokeDeviceRequest(name=b.device.name),
                                      metadata=bearer(a.tokens.access_token))
    finally:
        await first.stop()
    # A new process: fresh in-memory RevocationList, same data dir (same key, same store).
    second = await start_auth(settings, revocations=MemoryRevocationList())
    try:
        await second.stub.GetUser(pb.GetUserRequest(name="users/me"),
                                  metadata=bearer(a.tokens.access_token))
        err = await fails(second.stub.GetUser(pb.GetUserRequest(name="users/me"),
                                              metadata=bearer(b.tokens.access_token)),
                          grpc.StatusCode.UNAUTHENTICATED)
        assert error_details(err)[0] == "DEVICE_REVOKED"
    finally:
        await second.stop()


async def test_list_active_devices_is_internal_and_tracks_devices(auth):
    from tests.integration.conftest import INTERNAL_TOKEN

    internal = (("x-zynk-internal-token", INTERNAL_TOKEN),)
    a = await signup(auth, device="phone")
    laptop = await login(auth, a.user.username, "laptop")
    req = pb.ListActiveDevicesRequest(users=[a.user.name, "users/ghost"])
    # A user's token does not open an internal method.
    await fails(auth.stub.ListActiveDevices(req, metadata=bearer(a.tokens.access_token)),
                grpc.StatusCode.UNAUTHENTICATED)
    resp = await auth.stub.ListActiveDevices(req, metadata=internal)
    assert [(u.user, list(u.devices)) for u in resp.users] == [
        (a.user.name, [a.device.name, laptop.device.name])]

    await auth.stub.RevokeDevice(pb.RevokeDeviceRequest(name=laptop.device.name),
                                 metadata=bearer(a.tokens.access_token))
    resp = await auth.stub.ListActiveDevices(req, metadata=internal)
    assert list(resp.users[0].devices) == [a.device.name]


async def test_device_changes_are_published(auth):
    seen: list[events_pb2.DeviceChanged] = []

    async def collect(event):
        seen.append(events_pb2.EventEnvelope.FromString(event.payload).device_changed)

    auth.shared.bus.subscribe("devices.changed", f"test-{uuid.uuid4()}", collect)
    a = await signup(auth)
    await auth.stub.Logout(pb.LogoutRequest(), metadata=bearer(a.tokens.access_token))
    for _ in range(100):
        if len([e for e in seen if e.device == a.device.name]) == 2:
            break
        await asyncio.sleep(0.02)
    mine = [e.change for e in seen if e.device == a.device.name]
    assert mine == [events_pb2.DeviceChanged.CHANGE_ADDED, events_pb2.DeviceChanged.CHANGE_REVOKED]
    assert all(e.user == a.user.name for e in seen if e.device == a.device.name)
