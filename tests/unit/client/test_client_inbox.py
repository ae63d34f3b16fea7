"""ZynkClient.process: what a device does with its inbox entries. Messages are produced by
real sender engines and wrapped in the SubscribeResponse a server would deliver; the client
under test uses its real encrypted store. No server is involved (names are pre-cached)."""

import time

import pytest

from clients.sdk import plaintext as pt
from clients.sdk.client import ZynkClient
from clients.sdk.crypto.engine import DeviceCrypto, message_context
from clients.sdk.state import ProfileState, Tokens
from clients.sdk.store import EncryptedState, KdfParams, ProfileDir
from clients.sdk.transport import Transport
from tests.unit.client.conftest import claim, device, new_id
from zynk.messaging.v1 import messaging_pb2 as msg

pytestmark = pytest.mark.timeout(30)
FAST = KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1)
DM = "conversations/d0000000-0000-4000-8000-000000000001"
GROUP = "conversations/90000000-0000-4000-8000-000000000002"
NOWHERE = "http://127.0.0.1:9"


@pytest.fixture
async def bob(tmp_path):
    profile = ProfileDir(tmp_path, "bob").lock()
    crypto = device("bob")
    state = ProfileState(NOWHERE, "users/bob", "bob", crypto.device, "phone",
                         Tokens("a", time.time() + 3600, "r", time.time() + 7200), crypto,
                         keys_published=True)
    state.usernames.update({"users/alice": "alice", "users/carol": "carol",
                            "users/bob": "bob"})
    state.conversations[DM] = {"type": "direct", "peer": "users/alice", "title": "@alice"}
    state.conversations[GROUP] = {"type": "group", "group": "groups/g", "title": "#team"}
    store = EncryptedState.create(profile.state_path, "pw", state.to_json(), FAST)
    client = ZynkClient(profile, store, state, Transport(NOWHERE, tokens=state.tokens))
    yield client
    await client.close()


_cursor = iter(range(1, 10**6))


def entry(m: msg.Message) -> msg.SubscribeResponse:
    return msg.SubscribeResponse(cursor=f"cur-{next(_cursor)}", message=m)


async def pairwise(sender: DeviceCrypto, to: ZynkClient, content: pt.Content,
                   conversation: str = DM, seq: int = 1) -> msg.SubscribeResponse:
    crypto = to.state.crypto
    mid = new_id()
    ctx = message_context(conversation, mid, sender.device)
    bundles = {} if sender.has_session(crypto.device) else {crypto.device: claim(crypto)}
    out = await sender.encrypt_for(pt.encode(content), ctx, [crypto.device], bundles)
    is_prekey, ct = out[crypto.device]
    m = msg.Message(name=f"{conversation}/messages/{mid}", sequence=seq,
                    sender=sender.user, sender_device=sender.device)
    m.envelope.recipient_device = crypto.device
    m.envelope.type = msg.ENVELOPE_TYPE_PREKEY if is_prekey else msg.ENVELOPE_TYPE_RATCHET
    m.envelope.ciphertext = ct
    m.create_time.GetCurrentTime()
    return entry(m)


def group_message(sender: DeviceCrypto, text: str, seq: int) -> msg.SubscribeResponse:
    mid = new_id()
    ct = sender.group_encrypt(GROUP, pt.encode(pt.Text(text)),
                              message_context(GROUP, mid, sender.device))
    m = msg.Message(name=f"{GROUP}/messages/{mid}", sequence=seq, sender=sender.user,
                    sender_device=sender.device)
    m.sender_key.ciphertext = ct
    return entry(m)


def system(kind, users, seq, actor="users/alice") -> msg.SubscribeResponse:
    m = msg.Message(name=f"{GROUP}/messages/{new_id()}", sequence=seq)
    m.system_event.type = kind
    m.system_event.actor = actor
    m.system_event.users.extend(users)
    return entry(m)


async def test_messages_are_shown_once_and_the_cursor_is_durable(bob):
    alice = device("alice")
    first = await pairwise(alice, bob, pt.Text("hello bob"))
    events = await bob.process([first])
    assert [(e.kind, e.title, e.sender, e.text) for e in events] == \
        [("message", "@alice", "alice", "hello bob")]
    # Redelivered (at-least-once), even under another cursor: not shown again.
    again = msg.SubscribeResponse(cursor="cur-redelivered", message=first.message)
    assert await bob.process([again]) == []
    assert bob.state.cursor == "cur-redelivered"
    # All of it is on disk, encrypted: a restart resumes from there.
    _, saved = EncryptedState.open(bob.profile.state_path, "pw")
    restored = ProfileState.from_json(saved)
    assert restored.cursor == "cur-redelivered"
    assert restored.seen_before(first.message.name)
    assert b"hello bob" not in bob.profile.state_path.read_bytes()


async def test_a_broken_message_is_reported_and_does_not_block_the_inbox(bob):
    alice = device("alice")
    good = await pairwise(alice, bob, pt.Text("one"))
    bad = await pairwise(alice, bob, pt.Text("two"))
    bad.message.envelope.ciphertext = bad.message.envelope.ciphertext[:-1] + b"\x00"
    after = await pairwise(alice, bob, pt.Text("three"))
    events = await bob.process([good, bad, after])
    assert [e.kind for e in events] == ["message", "error", "message"]
    assert "could not read a message from alice" in events[1].text
    assert bob.state.cursor == after.cursor


async def test_edits_reactions_and_deletes_apply_to_history(bob):
    alice, carol = device("alice"), device("carol")
    hello = await pairwise(alice, bob, pt.Text("helo"))
    await bob.process([hello])
    mid = hello.message.name.rsplit("/", 1)[-1]
    events = await bob.process([await pairwise(alice, bob, pt.Edit(mid, "hello")),
                                await pairwise(alice, bob, pt.Reaction(mid, "🎉")),
                                await pairwise(carol, bob, pt.Edit(mid, "hijacked"))])
    assert [e.kind for e in events] == ["edit", "reaction", "edit"]
    item = bob.state.find_history(DM, mid)
    assert item["text"] == "hello" and item["edited"]  # carol may not edit alice's message
    assert item["reactions"] == {"users/alice": "🎉"}
    await bob.process([await pairwise(alice, bob, pt.Delete(mid))])
    assert bob.state.find_history(DM, mid)["deleted"]


async def test_group_keys_arrive_pairwise_and_rotate_on_membership_change(bob):
    alice = device("alice")
    key = alice.rotate_group_key(GROUP)
    skdm = await pairwise(alice, bob, pt.SenderKey(GROUP, key.key.distribution()), GROUP, 1)
    events = await bob.process([skdm, group_message(alice, "hi team", 2)])
    assert [(e.kind, e.title, e.text) for e in events] == [("message", "#team", "hi team")]
    # Bob had his own sender key out; a membership change makes it stale (rotate on send).
    bob.state.crypto.rotate_group_key(GROUP)
    await bob.process([system(msg.SystemEvent.TYPE_MEMBERS_ADDED, ["users/carol"], 3)])
    assert bob.state.crypto.group_key(GROUP).stale
    # Alice removed: her sender keys are forgotten.
    events = await bob.process([system(msg.SystemEvent.TYPE_MEMBERS_REMOVED,
                                       ["users/alice"], 4, actor="users/carol")])
    assert events[0].kind == "system" and events[0].text == "carol removed alice"
    assert (GROUP, alice.device) not in bob.state.crypto.peer_sender_keys


async def test_a_group_message_without_its_key_waits_and_asks(bob):
    alice = device("alice")
    key = alice.rotate_group_key(GROUP)
    early = group_message(alice, "you missed the key", 1)
    events = await bob.process([early])
    assert [e.kind for e in events] == ["info"]
    assert bob._requests == [(GROUP, alice.device, key.key.chain_id)]
    assert len(bob.state.pending_group) == 1
    # The answer to the request carries the key at Alice's *current* iteration (forward
    # secrecy): the waiting message is reported unreadable instead of waiting forever, and
    # everything after it reads.
    dist = pt.SenderKey(GROUP, alice.group_key(GROUP).key.distribution())
    events = await bob.process([await pairwise(alice, bob, dist, DM, 2)])
    assert [e.kind for e in events] == ["error"]
    assert bob.state.pending_group == []
    events = await bob.process([group_message(alice, "now readable", 3)])
    assert [(e.kind, e.text) for e in events] == [("message", "now readable")]


async def test_a_late_key_unlocks_waiting_group_messages(bob):
    alice = device("alice")
    key = alice.rotate_group_key(GROUP)
    dist = pt.SenderKey(GROUP, key.key.distribution())  # taken before the messages
    waiting = [group_message(alice, f"m{i}", i) for i in (1, 2)]
    assert [e.kind for e in await bob.process(waiting)] == ["info", "info"]
    events = await bob.process([await pairwise(alice, bob, dist, GROUP, 3)])
    assert [(e.kind, e.text) for e in events] == [("message", "m1"), ("message", "m2")]


async def test_sender_key_requests_are_only_answered_for_our_own_device(bob):
    alice = device("alice")
    other = "users/bob/devices/someone-else"
    await bob.process([await pairwise(alice, bob, pt.SenderKeyRequest(GROUP, other, 1)),
                       await pairwise(alice, bob, pt.SenderKeyRequest(GROUP, bob.device, 7))])
    assert bob._answers == [(GROUP, "users/alice", 7)]


async def test_receipts_and_caught_up(bob):
    r = msg.SubscribeResponse(cursor="c-r")
    r.receipt.type = msg.RECEIPT_TYPE_READ
    r.receipt.conversation = DM
    r.receipt.user = "users/alice"
    r.receipt.read_sequence = 4
    events = await bob.process([r, msg.SubscribeResponse(caught_up=msg.CaughtUp())])
    assert [(e.kind, e.text) for e in events] == [("receipt", "alice read up to #4"),
                                                  ("caught_up", "")]
    assert bob.state.cursor == "c-r"


async def test_our_own_group_message_echoed_back_is_skipped(bob):
    bob.state.crypto.rotate_group_key(GROUP)
    echo = group_message(bob.state.crypto, "mine", 1)
    assert await bob.process([echo]) == []
    assert bob.state.pending_group == [] and bob._requests == []
    assert bob.state.cursor == echo.cursor
