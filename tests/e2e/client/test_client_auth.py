"""The SDK against the REAL auth service through the real gateway: accounts, tokens, device
keys, bundles, and sessions established from claimed bundles."""

import time

import pytest

from clients.sdk import errors as E
from clients.sdk import plaintext as pt
from clients.sdk.client import ZynkClient
from clients.sdk.crypto.engine import message_context
from clients.sdk.state import OutboxEntry
from clients.sdk.transport import Transport
from tests.e2e.client.conftest import PASSPHRASE, PASSWORD, unique
from zynk.messaging.v1 import messaging_pb2 as msg

pytestmark = pytest.mark.timeout(60)
CONV = "conversations/e2e00000-0000-4000-8000-000000000001"


async def test_login_creates_a_device_and_publishes_its_keys(make_client):
    alice = await make_client("alice")
    status = await alice.transport.prekey_status(alice.device)
    assert status.one_time_prekey_count == 100 and status.signed_prekey_id == 1
    [device] = await alice.devices()
    assert device.name == alice.device and device.has_keys
    info = await alice.whoami()
    assert info["username"] == alice.state.username and info["one_time_prekeys"] == 100
    assert len(info["identity_fingerprint"]) == 30


async def test_reopening_needs_the_passphrase(make_client, tmp_path, server):
    alice = await make_client("alice")
    name, device = alice.profile.path.name, alice.device
    await alice.close()
    with pytest.raises(E.WrongPassphrase):
        await ZynkClient.open(tmp_path, name, "not it")
    with pytest.raises(E.ProfileError, match="belongs to"):
        await ZynkClient.open(tmp_path, name, PASSPHRASE, "http://elsewhere:1")
    async with await ZynkClient.open(tmp_path, name, PASSPHRASE, server) as again:
        assert again.device == device
        assert (await again.devices())[0].name == device
        with pytest.raises(E.ProfileLocked):
            await ZynkClient.open(tmp_path, name, PASSPHRASE)


async def test_a_second_login_into_the_same_profile_is_refused(make_client, tmp_path, server):
    alice = await make_client("alice")
    name, username = alice.profile.path.name, alice.state.username
    await alice.close()
    with pytest.raises(E.ProfileError, match="already holds a login"):
        await ZynkClient.login(tmp_path, name, PASSPHRASE, server, username, PASSWORD)


async def test_tokens_refresh_automatically_and_the_new_pair_is_persisted(make_client,
                                                                          tmp_path):
    alice = await make_client("alice")
    old = alice.state.tokens
    alice.state.tokens.access_expire = time.time()  # about to expire
    alice.transport.tokens = alice.state.tokens
    await alice.devices()
    new = alice.transport.tokens
    assert new.access_token != old.access_token and new.refresh_token != old.refresh_token
    name = alice.profile.path.name
    await alice.close()
    # The rotated refresh token is what was saved (the old one is spent: reusing it would
    # revoke the device), so a later run can refresh again.
    async with await ZynkClient.open(tmp_path, name, PASSPHRASE) as again:
        assert again.state.tokens.refresh_token == new.refresh_token
        await again.transport.refresh(force=True)
        assert (await again.devices())[0].has_keys


async def test_session_from_a_claimed_bundle_through_the_whole_client(make_client):
    alice, bob = await make_client("alice"), await make_client("bob")
    devices = await alice._devices_for([bob.user])
    assert devices == {bob.device}
    assert (await bob.transport.prekey_status(bob.device)).one_time_prekey_count == 99
    entry = OutboxEntry("0e2e0000-0000-4000-8000-000000000001", CONV, "pairwise",
                        pt.encode(pt.Text("hello over a claimed bundle")),
                        [alice.user, bob.user])
    await alice._encrypt_entry(entry, devices)
    is_prekey, ciphertext = entry.envelopes[bob.device]
    assert is_prekey and b"hello" not in ciphertext
    # What the messaging service would deliver to Bob's device.
    m = msg.Message(name=f"{CONV}/messages/{entry.message_id}", sequence=1, sender=alice.user,
                    sender_device=alice.device)
    m.envelope.recipient_device = bob.device
    m.envelope.type = msg.ENVELOPE_TYPE_PREKEY
    m.envelope.ciphertext = ciphertext
    events = await bob.process([msg.SubscribeResponse(cursor="1", message=m)])
    assert [(e.kind, e.sender, e.text) for e in events] == \
        [("message", alice.state.username, "hello over a claimed bundle")]
    assert bob.state.crypto.keys.one_time_prekey_count == 99  # consumed locally as well
    # ...and Bob answers in the session, without any bundle.
    ctx = message_context(CONV, "answer", bob.device)
    out = await bob.state.crypto.encrypt_for(pt.encode(pt.Text("hi")), ctx, [alice.device])
    assert out[alice.device][0] is False
    plaintext = await alice.state.crypto.decrypt_from(bob.device, False, out[alice.device][1],
                                                      ctx)
    assert pt.decode(plaintext) == pt.Text("hi")


async def test_one_time_prekeys_are_replenished_below_the_low_water_mark(make_client):
    alice, bob = await make_client("alice"), await make_client("bob")
    for _ in range(80):
        await alice.transport.claim_key_bundles(bob.user)
    assert (await bob.transport.prekey_status(bob.device)).one_time_prekey_count == 20
    assert await bob.maintain_keys() == 100
    assert (await bob.transport.prekey_status(bob.device)).one_time_prekey_count == 100
    assert await bob.maintain_keys() == 100  # nothing to do above the mark
    # Every published prekey is one Bob can use.
    bundles = [await alice.transport.claim_key_bundles(bob.user) for _ in range(3)]
    held = {k.public_key for k in bob.state.crypto.keys.one_time_prekeys()}
    assert all(b[0].one_time_prekey.public_key in held for b in bundles)


async def test_signed_prekey_rotation(make_client):
    alice, bob, carol = (await make_client("alice"), await make_client("bob"),
                         await make_client("carol"))
    before = await alice._claim(bob.user)  # claimed before the rotation
    bob.state.crypto.keys.signed_prekey_time -= 8 * 24 * 3600
    await bob.maintain_keys()
    status = await bob.transport.prekey_status(bob.device)
    assert status.signed_prekey_id == 2
    after = await carol._claim(bob.user)
    assert after[bob.device].signed_prekey.key_id == 2
    for sender, bundles in ((alice, before), (carol, after)):
        ctx = message_context(CONV, f"m-{sender.state.username}", sender.device)
        out = await sender.state.crypto.encrypt_for(pt.encode(pt.Text("x")), ctx,
                                                    [bob.device], bundles)
        assert pt.decode(await bob.state.crypto.decrypt_from(
            sender.device, True, out[bob.device][1], ctx)) == pt.Text("x")


async def test_fan_out_covers_the_senders_other_devices(make_client):
    alice1 = await make_client("alice")
    alice2 = await make_client(username=alice1.state.username, device="phone")
    bob = await make_client("bob")
    assert await alice1._devices_for([alice1.user, bob.user]) == {alice2.device, bob.device}
    # A device that has not published keys yet is not a target.
    assert alice2.device in {d.name for d in await alice1.devices() if d.has_keys}


async def test_safety_numbers_match_on_both_sides_and_change_with_devices(make_client):
    alice, bob = await make_client("alice"), await make_client("bob")
    a = await alice.safety_number(bob.state.username)
    b = await bob.safety_number(alice.state.username)
    assert a == b and len(a) == 60
    await make_client(username=bob.state.username, device="bob's tablet")
    assert await alice.safety_number(bob.state.username) != a
    # The claimed bundles are kept for the first message, not thrown away.
    assert set(alice.state.bundles) >= {bob.device}


async def test_peer_without_keys_and_unknown_users(make_client, server):
    alice = await make_client("alice")
    carol = unique("carol")
    await ZynkClient.register(server, carol, PASSWORD)  # never logged in: no device
    carol_user = await alice.lookup(carol)
    with pytest.raises(E.PeerHasNoKeys, match="no device with published keys"):
        await alice._devices_for([carol_user])
    with pytest.raises(E.NotFound):
        await alice.lookup(unique("nobody"))
    with pytest.raises(E.InvalidArgument, match="yourself"):
        await alice.resolve(alice.state.username)


async def test_rename_and_revoke_devices(make_client):
    alice1 = await make_client("alice")
    alice2 = await make_client(username=alice1.state.username, device="old phone")
    renamed = await alice1.rename_device(alice2.device.rsplit("/", 1)[-1][:8], "lost phone")
    assert renamed.display_name == "lost phone"
    await alice1.revoke_device("lost phone")
    assert [d.name for d in await alice1.devices()] == [alice1.device]
    with pytest.raises(E.SessionExpired, match="log in again"):
        await alice2.devices()
    bundles = await alice1.transport.claim_key_bundles(alice1.user)
    assert [b.device for b in bundles] == [alice1.device]


async def test_logout_ends_the_session_and_deletes_the_keys(make_client):
    alice = await make_client("alice")
    tokens = alice.state.tokens
    await alice.logout()
    assert not alice.profile.exists()
    stale = Transport(alice.transport.server, tokens=tokens)
    try:
        with pytest.raises(E.SessionExpired):
            await stale.list_devices()
    finally:
        await stale.close()


async def test_clear_errors(make_client, server):
    with pytest.raises(E.ServerUnreachable, match="cannot reach"):
        await ZynkClient.register("http://127.0.0.1:9", unique("x"), PASSWORD)
    with pytest.raises(E.InvalidArgument, match="username"):
        await ZynkClient.register(server, "x", PASSWORD)
    name = unique("dup")
    await ZynkClient.register(server, name, PASSWORD)
    with pytest.raises(E.AlreadyExists, match="taken"):
        await ZynkClient.register(server, name, PASSWORD)
    transport = Transport(server)
    try:
        with pytest.raises(E.NotAuthenticated, match="invalid username or password"):
            await transport.login(name, "wrong password!", "x")
    finally:
        await transport.close()
