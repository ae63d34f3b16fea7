"""Access tokens, refresh-token rotation and reuse detection, device revocation as the
shared TokenVerifier sees it."""

from __future__ import annotations

import base64
import stat

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.auth.signing import (
    REFRESH_TOKEN_PREFIX,
    jwk_thumbprint,
    load_or_create_signing_key,
    public_jwk,
    refresh_token_hash,
)
from services.runtime.errors import NotFound, PermissionDenied, Unauthenticated
from services.runtime.revocations import MemoryRevocationList
from services.runtime.tokens import LEEWAY_S, TokenVerifier
from tests.unit.auth.conftest import principal


def test_kid_is_the_rfc7638_thumbprint():
    # RFC 8037 appendix A.2/A.3: the Ed25519 public key and its JWK thumbprint.
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    assert jwk_thumbprint("Ed25519", x) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    pub = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "="))
    assert public_jwk(pub) == {"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA",
                               "use": "sig", "kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"}


def test_signing_key_created_0600_and_reloaded(tmp_path):
    path = tmp_path / "keys" / "jwt-ed25519.pem"
    key = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_signing_key(path)
    assert public_jwk(again.public_key()) == public_jwk(key.public_key())


async def test_access_token_header_and_claims(env):
    login = await env.signup("alice")
    token = login.tokens.access_token
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "typ": "at+jwt", "kid": env.issuer.kid}
    claims = jwt.decode(token, options={"verify_signature": False})
    ttl = env.settings.auth.access_ttl_s
    assert set(claims) == {"iss", "aud", "sub", "sid", "jti", "iat", "exp"}
    assert claims["iss"] == "zynk" and claims["aud"] == "zynk-api"
    assert claims["sub"] == login.user.id and claims["sid"] == login.device.id
    assert claims["iat"] == int(env.clock.now) and claims["exp"] == claims["iat"] + ttl
    assert login.tokens.access_token_expire_time == claims["exp"]
    other = await env.domain.login("alice", "correct horse battery", "", "10.0.0.1")
    assert jwt.decode(other.tokens.access_token,
                      options={"verify_signature": False})["jti"] != claims["jti"]


async def test_verifier_refuses_an_expired_access_token(env):
    env.clock.advance(-(env.settings.auth.access_ttl_s + LEEWAY_S + 5))
    login = await env.signup("bob")
    with pytest.raises(Unauthenticated) as e:
        await env.verifier.verify(login.tokens.access_token)
    assert e.value.reason == "TOKEN_EXPIRED"


async def test_refresh_tokens_are_opaque_and_stored_only_hashed(env):
    login = await env.signup("carol")
    rt = login.tokens.refresh_token
    assert rt.startswith(REFRESH_TOKEN_PREFIX)
    assert len(base64.urlsafe_b64decode(rt[len(REFRESH_TOKEN_PREFIX):] + "=")) == 32
    row = await env.store.get_refresh_token(refresh_token_hash(rt))
    assert row.device_id == login.device.id and row.used_time is None
    assert rt.encode() not in repr(env.store._state).encode()
    assert login.tokens.refresh_token_expire_time == env.clock.now + env.settings.auth.refresh_ttl_s


async def test_refresh_rotates(env):
    login = await env.signup("dave")
    pair = await env.domain.refresh(login.tokens.refresh_token)
    assert pair.refresh_token != login.tokens.refresh_token
    assert pair.access_token != login.tokens.access_token
    p = await env.verifier.verify(pair.access_token)
    assert p.device_id == login.device.id
    old = await env.store.get_refresh_token(refresh_token_hash(login.tokens.refresh_token))
    assert old.used_time is not None
    # The new one works once more.
    third = await env.domain.refresh(pair.refresh_token)
    assert third.refresh_token not in (pair.refresh_token, login.tokens.refresh_token)


async def test_refresh_reuse_revokes_the_family_and_the_device(env):
    login = await env.signup("erin")
    stolen = login.tokens.refresh_token
    legit = await env.domain.refresh(stolen)
    await env.verifier.verify(legit.access_token)
    with pytest.raises(Unauthenticated) as e:
        await env.domain.refresh(stolen)  # the attacker (or the victim) replays
    assert e.value.reason == "REFRESH_TOKEN_REUSED"
    # The whole family is dead: the newest refresh token too ...
    with pytest.raises(Unauthenticated):
        await env.domain.refresh(legit.refresh_token)
    # ... and the device's access tokens are refused by every verifier at once.
    for token in (login.tokens.access_token, legit.access_token):
        with pytest.raises(Unauthenticated) as e:
            await env.verifier.verify(token)
        assert e.value.reason == "DEVICE_REVOKED"
    device = await env.store.get_device(login.device.id)
    assert device.revoked and device.revoke_reason == "refresh_token_reused"
    # Other devices of the same user are untouched.
    other = await env.domain.login("erin", "correct horse battery", "", "10.0.0.1")
    await env.verifier.verify(other.tokens.access_token)


async def test_expired_and_unknown_refresh_tokens_are_refused(env):
    login = await env.signup("frank")
    with pytest.raises(Unauthenticated) as e:
        await env.domain.refresh(REFRESH_TOKEN_PREFIX + "A" * 43)
    assert e.value.reason == "REFRESH_TOKEN_INVALID"
    env.clock.advance(env.settings.auth.refresh_ttl_s + 1)
    with pytest.raises(Unauthenticated) as e:
        await env.domain.refresh(login.tokens.refresh_token)
    assert e.value.reason == "REFRESH_TOKEN_EXPIRED"


async def test_logout_revokes_the_calling_device(env):
    login = await env.signup("grace")
    await env.verifier.verify(login.tokens.access_token)
    await env.domain.logout(principal(login))
    with pytest.raises(Unauthenticated):
        await env.verifier.verify(login.tokens.access_token)
    with pytest.raises(Unauthenticated):
        await env.domain.refresh(login.tokens.refresh_token)


async def test_revoke_device_own_only_and_refused_by_verifier(env):
    a1 = await env.signup("heidi", device="phone")
    a2 = await env.domain.login("heidi", "correct horse battery", "laptop", "10.0.0.1")
    b = await env.signup("ivan")
    with pytest.raises(PermissionDenied):
        await env.domain.revoke_device(principal(b), a1.user.id, a1.device.id)
    with pytest.raises(NotFound):  # someone else's device under my own name
        await env.domain.revoke_device(principal(b), "me", a1.device.id)
    revoked = await env.domain.revoke_device(principal(a2), "me", a1.device.id)
    assert revoked.revoke_time == env.clock.now
    with pytest.raises(Unauthenticated) as e:
        await env.verifier.verify(a1.tokens.access_token)
    assert e.value.reason == "DEVICE_REVOKED"
    await env.verifier.verify(a2.tokens.access_token)
    await env.verifier.verify(b.tokens.access_token)
    # Idempotent: revoking again keeps the first revoke time.
    env.clock.advance(-1)
    assert (await env.domain.revoke_device(principal(a2), "me", a1.device.id)).revoke_time \
        == revoked.revoke_time


async def test_restart_restores_recent_revocations(env):
    old = await env.signup("judy", device="old")
    recent = await env.domain.login("judy", "correct horse battery", "recent", "10.0.0.1")
    live = await env.domain.login("judy", "correct horse battery", "live", "10.0.0.1")
    await env.domain.revoke_device(principal(live), "me", old.device.id)
    env.clock.advance(env.settings.auth.access_ttl_s + LEEWAY_S + 1)  # old's tokens expired
    await env.domain.revoke_device(principal(live), "me", recent.device.id)
    # "Restart": a fresh in-memory RevocationList, rebuilt from the store.
    fresh = MemoryRevocationList(clock=env.clock)
    restored = env.new_domain(revocations=fresh)
    assert await restored.restore_revocations() == 1
    assert await fresh.is_revoked(recent.device.id)
    assert not await fresh.is_revoked(old.device.id)  # no longer needed: tokens expired
    assert not await fresh.is_revoked(live.device.id)
    verifier = TokenVerifier(env.verifier._keys, "zynk", "zynk-api", fresh)
    with pytest.raises(Unauthenticated) as e:  # its token has not expired yet
        await verifier.verify(recent.tokens.access_token)
    assert e.value.reason == "DEVICE_REVOKED"
    await verifier.verify(live.tokens.access_token)
