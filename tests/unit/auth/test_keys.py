"""Device keys: signed-prekey signatures, identity keys set once, one-time prekey pools and
claims."""

from __future__ import annotations

import pytest
import xeddsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.auth.domain import SignedPrekeyInput
from services.auth.store import OneTimePrekeyRow
from services.runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from tests.support.auth import DeviceKeys
from tests.unit.auth.conftest import PASSWORD, principal


def spk(keys: DeviceKeys, **override) -> SignedPrekeyInput:
    values = {"key_id": keys.signed_prekey_id, "public_key": keys.signed_prekey,
              "signature": keys.signature, **override}
    return SignedPrekeyInput(**values)


def otpks(keys: DeviceKeys) -> list[OneTimePrekeyRow]:
    return [OneTimePrekeyRow(i, pub) for i, pub in keys.one_time_prekeys.items()]


async def publish(env, login, keys: DeviceKeys, **kw):
    args = {"identity_key": keys.identity_key, "signed_prekey": spk(keys),
            "one_time_prekeys": otpks(keys), **kw}
    return await env.domain.publish_device_keys(principal(login), "me", login.device.id,
                                                **args)


def test_xeddsa_signatures_are_standard_ed25519():
    """The reference client signs with python-xeddsa; the server verifies with plain
    Ed25519 (cryptography). Check the two agree, and that a forged one fails both."""
    for _ in range(20):
        keys = DeviceKeys.generate(0)
        pub = Ed25519PublicKey.from_public_bytes(keys.identity_key)
        pub.verify(keys.signature, keys.signed_prekey)
        assert xeddsa.ed25519_verify(keys.signature, keys.identity_key, keys.signed_prekey)


async def test_publish_accepts_a_good_signature(env):
    login = await env.signup("alice")
    keys = DeviceKeys.generate(5)
    assert await publish(env, login, keys) == 5
    device = await env.store.get_device(login.device.id)
    assert device.has_keys and device.identity_key == keys.identity_key
    assert device.signed_prekey.public_key == keys.signed_prekey


@pytest.mark.parametrize("forgery", ["flipped_bit", "other_key", "other_prekey", "zeros"])
async def test_publish_refuses_a_forged_signature(env, forgery):
    login = await env.signup("bob")
    keys = DeviceKeys.generate(3)
    other = DeviceKeys.generate(0)
    attacker = Ed25519PrivateKey.generate()
    forged = {
        "flipped_bit": spk(keys, signature=bytes([keys.signature[0] ^ 1]) + keys.signature[1:]),
        "other_key": spk(keys, signature=attacker.sign(keys.signed_prekey)),
        "other_prekey": spk(keys, public_key=other.signed_prekey),
        "zeros": spk(keys, signature=bytes(64)),
    }[forgery]
    with pytest.raises(InvalidArgument) as e:
        await publish(env, login, keys, signed_prekey=forged)
    assert e.value.reason == "SIGNATURE_INVALID"
    assert e.value.field_violations[0][0] == "signed_prekey.signature"
    device = await env.store.get_device(login.device.id)
    assert device.identity_key is None and not device.has_keys  # nothing written
    assert await env.store.count_one_time_prekeys(login.device.id) == 0


async def test_signature_by_the_wrong_identity_key_is_refused(env):
    login = await env.signup("carol")
    attacker = Ed25519PrivateKey.generate()
    keys = DeviceKeys.generate(0)
    attacker_pub = attacker.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    # A valid signature by the attacker's key, published under the device's identity key.
    with pytest.raises(InvalidArgument):
        await publish(env, login, keys,
                      signed_prekey=spk(keys, signature=attacker.sign(keys.signed_prekey)))
    # Self-consistent with the attacker's key: accepted (the identity key is the trust root).
    await publish(env, login, keys, identity_key=attacker_pub,
                  signed_prekey=spk(keys, signature=attacker.sign(keys.signed_prekey)))


async def test_identity_key_is_set_once(env):
    login = await env.signup("dave")
    keys = DeviceKeys.generate(2)
    await publish(env, login, keys)
    # Same identity, new signed prekey and more one-time prekeys: fine.
    more = DeviceKeys.generate(2, first_id=10)
    new_sig = keys.state  # rotate via the library, then publish the rotation
    new_sig.rotate_signed_pre_key()
    b = new_sig.bundle
    count = await publish(env, login, keys, signed_prekey=SignedPrekeyInput(
        7, b.signed_pre_key, b.signed_pre_key_sig), one_time_prekeys=otpks(more))
    assert count == 4
    assert (await env.store.get_device(login.device.id)).signed_prekey.key_id == 7
    # A different identity key is refused, and nothing of that request is written.
    other = DeviceKeys.generate(2, first_id=20)
    with pytest.raises(FailedPrecondition) as e:
        await publish(env, login, other)
    assert e.value.reason == "IDENTITY_KEY_CHANGED"
    assert await env.store.count_one_time_prekeys(login.device.id) == 4


async def test_only_the_calling_device_publishes(env):
    a1 = await env.signup("erin")
    a2 = await env.domain.login("erin", PASSWORD, "", "10.0.0.1")
    keys = DeviceKeys.generate(1)
    with pytest.raises(PermissionDenied):
        await env.domain.publish_device_keys(principal(a2), "me", a1.device.id,
                                             keys.identity_key, spk(keys), otpks(keys))
    b = await env.signup("frank")
    with pytest.raises(PermissionDenied):
        await env.domain.publish_device_keys(principal(b), a1.user.id, a1.device.id,
                                             keys.identity_key, spk(keys), otpks(keys))


async def test_duplicate_prekey_ids_write_nothing(env):
    login = await env.signup("grace")
    keys = DeviceKeys.generate(3)
    await publish(env, login, keys)
    dup_in_request = [OneTimePrekeyRow(50, bytes(32)), OneTimePrekeyRow(50, bytes(32))]
    with pytest.raises(InvalidArgument) as e:
        await publish(env, login, keys, one_time_prekeys=dup_in_request)
    assert e.value.field_violations == [("one_time_prekeys[1].key_id", "duplicate key id")]
    clash = [OneTimePrekeyRow(60, bytes(32)), OneTimePrekeyRow(2, bytes(32))]
    with pytest.raises(AlreadyExists) as e:
        await publish(env, login, keys, signed_prekey=None, one_time_prekeys=clash)
    assert e.value.metadata == {"key_ids": "2"}
    assert await env.store.count_one_time_prekeys(login.device.id) == 3  # 60 not added


async def test_one_time_prekey_cap(env):
    cap = env.settings.auth.max_one_time_prekeys  # 10 in these tests
    login = await env.signup("heidi")
    keys = DeviceKeys.generate(cap - 2)
    await publish(env, login, keys)
    too_many = [OneTimePrekeyRow(100 + i, bytes([i]) * 32) for i in range(3)]
    with pytest.raises(ResourceExhausted) as e:
        await publish(env, login, keys, one_time_prekeys=too_many)
    assert e.value.reason == "PREKEY_LIMIT"
    assert await publish(env, login, keys, one_time_prekeys=too_many[:2]) == cap


async def test_claim_hands_out_each_prekey_once(env):
    bob = await env.signup("ivan", device="phone")
    bob2 = await env.domain.login("ivan", PASSWORD, "laptop", "10.0.0.1")
    bob3 = await env.domain.login("ivan", PASSWORD, "no keys yet", "10.0.0.1")
    k1, k2 = DeviceKeys.generate(2), DeviceKeys.generate(1)
    await publish(env, bob, k1)
    await publish(env, bob2, k2)
    alice = principal(await env.signup("judy"))
    handed: list[tuple[str, int]] = []
    for _ in range(3):
        bundles = await env.domain.claim_key_bundles(alice, bob.user.id, [])
        assert {b.device.id for b in bundles} == {bob.device.id, bob2.device.id}  # not bob3
        assert len(bundles) == 2
        for b in bundles:
            assert b.device.identity_key in (k1.identity_key, k2.identity_key)
            if b.one_time_prekey is not None:
                handed.append((b.device.id, b.one_time_prekey.key_id))
    assert sorted(handed) == sorted([(bob.device.id, 1), (bob.device.id, 2),
                                     (bob2.device.id, 1)])
    assert await env.store.count_one_time_prekeys(bob.device.id) == 0
    del bob3


async def test_claim_filters_and_skips_revoked_devices(env):
    bob = await env.signup("mallory")
    bob2 = await env.domain.login("mallory", PASSWORD, "", "10.0.0.1")
    await publish(env, bob, DeviceKeys.generate(2))
    await publish(env, bob2, DeviceKeys.generate(2))
    alice = principal(await env.signup("niaj"))
    only = await env.domain.claim_key_bundles(alice, bob.user.id,
                                              [(bob.user.id, bob2.device.id)])
    assert [b.device.id for b in only] == [bob2.device.id]
    with pytest.raises(InvalidArgument):
        await env.domain.claim_key_bundles(alice, bob.user.id, [("me", bob2.device.id)])
    await env.domain.revoke_device(principal(bob2), "me", bob.device.id)
    bundles = await env.domain.claim_key_bundles(alice, bob.user.id, [])
    assert [b.device.id for b in bundles] == [bob2.device.id]
    # Revocation withdrew the revoked device's keys.
    assert await env.store.count_one_time_prekeys(bob.device.id) == 0
    assert not (await env.store.get_device(bob.device.id)).has_keys
    with pytest.raises(NotFound):
        await env.domain.claim_key_bundles(alice, "no-such-user", [])


async def test_prekey_status_for_the_calling_device_only(env):
    a = await env.signup("olivia")
    a2 = await env.domain.login("olivia", PASSWORD, "", "10.0.0.1")
    keys = DeviceKeys.generate(4)
    await publish(env, a, keys)
    status = await env.domain.prekey_status(principal(a), "me", a.device.id)
    assert status.one_time_prekey_count == 4
    assert status.signed_prekey.key_id == keys.signed_prekey_id
    with pytest.raises(PermissionDenied):
        await env.domain.prekey_status(principal(a2), "me", a.device.id)
