"""Group sender keys: distribution over pairwise sessions, rotation on membership change."""

import pytest

from clients.sdk import plaintext as pt
from clients.sdk.crypto import senderkey
from clients.sdk.crypto.engine import DeviceCrypto, message_context
from clients.sdk.crypto.senderkey import OwnSenderKey
from clients.sdk.errors import DuplicateMessage, MissingSenderKey, SessionBroken
from tests.unit.client.conftest import device, new_id, send

pytestmark = pytest.mark.timeout(30)
GROUP = "conversations/9a0c0000-0000-4000-8000-00000000beef"


async def distribute(sender: DeviceCrypto, members: list[DeviceCrypto]) -> None:
    """Rotate and give the new sender key to `members` as a pairwise SENDER_KEY message."""
    key = sender.rotate_group_key(GROUP)
    w = await send(sender, pt.SenderKey(GROUP, key.key.distribution()), members, GROUP)
    for m in members:
        content = await w.open(m)
        assert isinstance(content, pt.SenderKey)
        assert m.accept_sender_key(content.conversation, sender.device, content.distribution)


def group_send(sender: DeviceCrypto, text: str) -> tuple[str, bytes]:
    mid = new_id()
    return mid, sender.group_encrypt(GROUP, pt.encode(pt.Text(text)),
                                     message_context(GROUP, mid, sender.device))


def group_open(receiver: DeviceCrypto, sender: DeviceCrypto, mid: str, ct: bytes):
    return pt.decode(receiver.group_decrypt(GROUP, sender.device, ct,
                                            message_context(GROUP, mid, sender.device)))


async def test_one_ciphertext_for_every_member_device():
    alice1, alice2, bob, carol = (device("alice", 1), device("alice", 2), device("bob"),
                                  device("carol"))
    await distribute(alice1, [alice2, bob, carol])
    mid, ct = group_send(alice1, "hello group")
    for m in (alice2, bob, carol):
        assert group_open(m, alice1, mid, ct) == pt.Text("hello group")
    # Members' own keys work the same way.
    await distribute(bob, [alice1, alice2, carol])
    mid, ct = group_send(bob, "hi from bob")
    for m in (alice1, alice2, carol):
        assert group_open(m, bob, mid, ct) == pt.Text("hi from bob")


async def test_rotation_after_removal_locks_the_removed_member_out():
    alice, bob, carol = device("alice"), device("bob"), device("carol")
    await distribute(alice, [bob, carol])
    mid, ct = group_send(alice, "before")
    assert group_open(carol, alice, mid, ct) == pt.Text("before")
    # Carol is removed: Alice sees MEMBERS_REMOVED, marks her key stale and rotates.
    alice.mark_group_key_stale(GROUP)
    with pytest.raises(SessionBroken):
        group_send(alice, "not before rotating")
    await distribute(alice, [bob])
    mid, ct = group_send(alice, "after")
    assert group_open(bob, alice, mid, ct) == pt.Text("after")
    with pytest.raises(MissingSenderKey):
        group_open(carol, alice, mid, ct)
    # Even with the old chain and everything it could derive, Carol cannot read it.
    old = carol.peer_sender_keys[(GROUP, alice.device)][0]
    forced = type(old)(senderkey.parse_header(ct)[0], old.iteration, old.chain_key,
                       old.signing_key)
    with pytest.raises(SessionBroken):
        forced.decrypt(ct, message_context(GROUP, mid, alice.device))


async def test_messages_from_just_before_a_rotation_still_decrypt():
    alice, bob = device("alice"), device("bob")
    await distribute(alice, [bob])
    mid_old, ct_old = group_send(alice, "old chain")
    await distribute(alice, [bob])
    mid_new, ct_new = group_send(alice, "new chain")
    assert group_open(bob, alice, mid_new, ct_new) == pt.Text("new chain")
    assert group_open(bob, alice, mid_old, ct_old) == pt.Text("old chain")


async def test_out_of_order_duplicates_and_the_skip_window():
    alice, bob = device("alice"), device("bob")
    await distribute(alice, [bob])
    sent = [group_send(alice, f"m{i}") for i in range(6)]
    for i in (2, 0, 5, 1, 4, 3):
        assert group_open(bob, alice, *sent[i]) == pt.Text(f"m{i}")
    with pytest.raises(DuplicateMessage):
        group_open(bob, alice, *sent[4])
    key = alice.group_key(GROUP).key
    key.iteration += senderkey.MAX_SKIP + 5  # pretend many messages were lost
    with pytest.raises(SessionBroken, match="skips"):
        group_open(bob, alice, *group_send(alice, "too far"))


async def test_tampering_and_forgery_by_another_member():
    alice, bob, carol = device("alice"), device("bob"), device("carol")
    await distribute(alice, [bob, carol])
    mid, ct = group_send(alice, "authentic")
    for i in (0, 5, 12, len(ct) - 70, len(ct) - 1):
        bad = bytearray(ct)
        bad[i] ^= 1
        with pytest.raises(SessionBroken):
            group_open(bob, alice, mid, bytes(bad))
    with pytest.raises(SessionBroken):  # moved to another message id
        group_open(bob, alice, new_id(), ct)
    # Bob knows Alice's chain key, but not her signing key: he cannot speak as her.
    theirs = bob.peer_sender_keys[(GROUP, alice.device)][0]
    forger = OwnSenderKey(theirs.chain_id, theirs.iteration, theirs.chain_key,
                          OwnSenderKey.generate().signing_private)
    fmid = new_id()
    forged = forger.encrypt(pt.encode(pt.Text("alice says pay bob")),
                            message_context(GROUP, fmid, alice.device))
    with pytest.raises(SessionBroken, match="signature"):
        group_open(carol, alice, fmid, forged)
    assert group_open(carol, alice, mid, ct) == pt.Text("authentic")


async def test_redistribution_of_a_held_chain_does_not_rewind_or_skip():
    alice, bob = device("alice"), device("bob")
    await distribute(alice, [bob])
    first = group_send(alice, "one")
    again = alice.group_key(GROUP).key.distribution()  # same chain, later iteration
    assert not bob.accept_sender_key(GROUP, alice.device, again)
    assert group_open(bob, alice, *first) == pt.Text("one")


async def test_state_round_trips_through_json():
    import json

    alice, bob = device("alice"), device("bob")
    await distribute(alice, [bob])
    a, b = group_send(alice, "x"), group_send(alice, "y")
    bob = DeviceCrypto.from_json(json.loads(json.dumps(bob.to_json())))
    alice = DeviceCrypto.from_json(json.loads(json.dumps(alice.to_json())))
    assert group_open(bob, alice, *b) == pt.Text("y")
    assert group_open(bob, alice, *a) == pt.Text("x")
    assert group_open(bob, alice, *group_send(alice, "z")) == pt.Text("z")


async def test_forgetting_a_removed_users_keys():
    alice, bob, carol = device("alice"), device("bob"), device("carol")
    await distribute(bob, [alice])
    await distribute(carol, [alice])
    alice.drop_sender_keys(GROUP, ["users/carol"])
    assert (GROUP, bob.device) in alice.peer_sender_keys
    assert (GROUP, carol.device) not in alice.peer_sender_keys
