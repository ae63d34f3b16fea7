"""X3DH + Double Ratchet between SDK devices, in memory."""

import json

import pytest

from clients.sdk import plaintext as pt
from clients.sdk.crypto.engine import DeviceCrypto, message_context
from clients.sdk.errors import DuplicateMessage, IdentityKeyChanged, SessionBroken
from tests.unit.client.conftest import CONV, claim, device, new_id, send

pytestmark = pytest.mark.timeout(30)


async def test_first_message_is_prekey_then_ratchet_after_the_answer():
    alice, bob = device("alice"), device("bob")
    w = await send(alice, pt.Text("hi bob"), [bob])
    assert w.out[bob.device][0] is True  # PREKEY
    assert await w.open(bob) == pt.Text("hi bob")
    # Until Alice hears back she keeps sending PREKEY envelopes (same X3DH header).
    w2 = await send(alice, pt.Text("still there?"), [bob])
    assert w2.out[bob.device][0] is True
    assert await w2.open(bob) == pt.Text("still there?")
    reply = await send(bob, pt.Text("hi alice"), [alice])
    assert reply.out[alice.device][0] is False  # Bob answers in the session: RATCHET
    assert await reply.open(alice) == pt.Text("hi alice")
    w3 = await send(alice, pt.Text("good"), [bob])
    assert w3.out[bob.device][0] is False
    assert await w3.open(bob) == pt.Text("good")


async def test_many_turns_both_directions():
    alice, bob = device("alice"), device("bob")
    for i in range(6):
        for sender, receiver in ((alice, bob), (bob, alice)):
            for j in range(3):
                w = await send(sender, pt.Text(f"{i}.{j}"), [receiver])
                assert await w.open(receiver) == pt.Text(f"{i}.{j}")


async def test_out_of_order_delivery_including_the_first_message():
    alice, bob = device("alice"), device("bob")
    wires = [await send(alice, pt.Text(f"m{i}"), [bob]) for i in range(5)]
    for i in (3, 0, 4, 2, 1):  # the PREKEY-carrying first message arrives second
        assert await wires[i].open(bob) == pt.Text(f"m{i}")
    # Every one of them decrypts exactly once.
    with pytest.raises(DuplicateMessage):
        await wires[2].open(bob)


async def test_out_of_order_across_ratchet_steps():
    alice, bob = device("alice"), device("bob")
    await (await send(alice, pt.Text("hello"), [bob])).open(bob)
    await (await send(bob, pt.Text("hey"), [alice])).open(alice)
    early = await send(alice, pt.Text("before the turn"), [bob])
    await (await send(bob, pt.Text("bob again"), [alice])).open(alice)
    late = await send(alice, pt.Text("after the turn"), [bob])
    assert await late.open(bob) == pt.Text("after the turn")
    assert await early.open(bob) == pt.Text("before the turn")


async def test_session_without_one_time_prekey():
    alice, bob = device("alice"), device("bob")
    w = await send(alice, pt.Text("no otpk left"), [bob], one_time=False)
    assert await w.open(bob) == pt.Text("no otpk left")


async def test_one_time_prekey_is_consumed_once_and_only_on_success():
    alice, bob, mallory = device("alice"), device("bob"), device("mallory")
    bundle = claim(bob)
    before = bob.keys.one_time_prekey_count

    async def start(sender: DeviceCrypto):
        ctx = message_context(CONV, new_id(), sender.device)
        out = await sender.encrypt_for(pt.encode(pt.Text("x")), ctx, [bob.device],
                                       {bob.device: bundle})
        return out[bob.device][1], ctx

    ct, ctx = await start(alice)
    tampered = ct[:-1] + bytes([ct[-1] ^ 1])
    with pytest.raises(SessionBroken):
        await bob.decrypt_from(alice.device, True, tampered, ctx)
    assert bob.keys.one_time_prekey_count == before  # a forgery burns nothing
    assert pt.decode(await bob.decrypt_from(alice.device, True, ct, ctx)) == pt.Text("x")
    assert bob.keys.one_time_prekey_count == before - 1
    # Another session (another ephemeral key) on the same one-time prekey cannot open.
    ct, ctx = await start(mallory)
    with pytest.raises(SessionBroken, match="prekey"):
        await bob.decrypt_from(mallory.device, True, ct, ctx)


async def test_tampering_and_replay_into_another_context_are_detected():
    alice, bob = device("alice"), device("bob")
    await (await send(alice, pt.Text("open"), [bob])).open(bob)
    await (await send(bob, pt.Text("ok"), [alice])).open(alice)
    w = await send(alice, pt.Text("secret"), [bob])
    is_prekey, ct = w.out[bob.device]
    for i in (1, 10, 40, len(ct) - 1):  # header, ratchet key, body, MAC
        bad = bytearray(ct)
        bad[i] ^= 0x20
        with pytest.raises(SessionBroken):
            await bob.decrypt_from(alice.device, is_prekey, bytes(bad), w.context())
    other_conv = message_context("conversations/other", w.message_id, alice.device)
    other_id = message_context(CONV, new_id(), alice.device)
    for ctx in (other_conv, other_id):
        with pytest.raises(SessionBroken):
            await bob.decrypt_from(alice.device, is_prekey, ct, ctx)
    # A failed attempt leaves the session intact.
    assert await w.open(bob) == pt.Text("secret")


async def test_simultaneous_initiation_converges():
    alice, bob = device("alice"), device("bob")
    a1 = await send(alice, pt.Text("from alice"), [bob])
    b1 = await send(bob, pt.Text("from bob"), [alice])
    assert await a1.open(bob) == pt.Text("from alice")
    assert await b1.open(alice) == pt.Text("from bob")
    for i in range(3):
        w = await send(alice, pt.Text(f"a{i}"), [bob])
        assert await w.open(bob) == pt.Text(f"a{i}")
        w = await send(bob, pt.Text(f"b{i}"), [alice])
        assert await w.open(alice) == pt.Text(f"b{i}")


async def test_identity_key_change_for_a_known_device_is_refused():
    alice, bob = device("alice"), device("bob")
    await (await send(alice, pt.Text("hi"), [bob])).open(bob)
    impostor = DeviceCrypto.create(bob.device)  # same device name, another identity key
    alice.forget_device(bob.device)
    with pytest.raises(IdentityKeyChanged):
        await send(alice, pt.Text("to the impostor"), [impostor])
    # ...and an incoming session from an impostor of Alice's device is refused by Bob.
    fake_alice = DeviceCrypto.create(alice.device)
    w = await send(fake_alice, pt.Text("it's me"), [bob])
    with pytest.raises(IdentityKeyChanged):
        await w.open(bob)


async def test_bad_signed_prekey_signature_is_refused():
    alice, bob = device("alice"), device("bob")
    b = claim(bob)
    forged = type(b.signed_prekey)(b.signed_prekey.key_id, b.signed_prekey.public_key,
                                   bytes(64))
    with pytest.raises(SessionBroken, match="signature"):
        await alice.encrypt_for(b"x" * 256, b"ctx", [bob.device],
                                {bob.device: type(b)(b.device, b.identity_key, forged,
                                                     b.one_time_prekey)})


async def test_state_survives_serialisation_mid_conversation():
    alice, bob = device("alice"), device("bob")
    await (await send(alice, pt.Text("1"), [bob])).open(bob)
    pending = await send(alice, pt.Text("2"), [bob])

    def reload(e: DeviceCrypto) -> DeviceCrypto:
        return DeviceCrypto.from_json(json.loads(json.dumps(e.to_json())))

    alice, bob = reload(alice), reload(bob)
    assert await pending.open(bob) == pt.Text("2")
    w = await send(bob, pt.Text("3"), [alice])
    assert await w.open(reload(alice)) == pt.Text("3")


async def test_signed_prekey_rotation_keeps_one_old_key():
    alice, bob, carol = device("alice"), device("bob"), device("carol")
    old_bundle = claim(bob)
    spk = bob.keys.rotate_signed_prekey()
    assert spk.key_id == old_bundle.signed_prekey.key_id + 1
    assert spk.public_key != old_bundle.signed_prekey.public_key
    # A session started from a bundle claimed before the rotation still opens...
    mid = new_id()
    ctx = message_context(CONV, mid, alice.device)
    out = await alice.encrypt_for(b"\x80" + bytes(255), ctx, [bob.device],
                                  {bob.device: old_bundle})
    await bob.decrypt_from(alice.device, True, out[bob.device][1], ctx)
    # ...and one from the new bundle too; after a second rotation the oldest key is gone.
    w = await send(carol, pt.Text("new spk"), [bob])
    assert await w.open(bob) == pt.Text("new spk")
    stale = claim(bob)
    bob.keys.rotate_signed_prekey()
    bob.keys.rotate_signed_prekey()
    dave = device("dave")
    mid = new_id()
    ctx = message_context(CONV, mid, dave.device)
    out = await dave.encrypt_for(b"\x80" + bytes(255), ctx, [bob.device], {bob.device: stale})
    with pytest.raises(SessionBroken, match="prekey"):
        await bob.decrypt_from(dave.device, True, out[bob.device][1], ctx)
