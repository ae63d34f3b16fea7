"""Group conversations (ApplyGroupMembershipChange, sender keys), settings, deletes,
disappearing messages, authorisation, the stream's lifecycle, and a restart."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid

import grpc
import psycopg
from google.protobuf import duration_pb2, field_mask_pb2

from tests.integration.messaging.conftest import (
    Device,
    Inbox,
    direct,
    messaging_test_settings,
    new_user,
    send_request,
)
from tests.support.grpc_errors import fails
from tests.support.mesh import start_mesh
from zynk.auth.v1 import auth_pb2
from zynk.messaging.v1 import messaging_pb2 as pb
from zynk.messaging.v1 import messaging_pb2_grpc


def internal(mesh) -> messaging_pb2_grpc.MessagingServiceStub:
    return messaging_pb2_grpc.MessagingServiceStub(mesh.internal_channel("messaging"))


async def apply(mesh, group: str, actor: Device, added=(), removed=(), admins=(),
                deleted=False, change_id: str | None = None):
    return await internal(mesh).ApplyGroupMembershipChange(pb.ApplyGroupMembershipChangeRequest(
        group=group, change_id=change_id or str(uuid.uuid4()), actor=actor.user,
        added_users=[d.user for d in added], removed_users=[d.user for d in removed],
        admins=[d.user for d in admins], group_deleted=deleted))


def stored_envelopes(mesh, msg: pb.Message) -> int:
    """Envelope rows the messaging database still holds for `msg` (read directly)."""
    conv = msg.name.split("/")[1]
    if mesh.settings.backends.storage == "postgres":
        with psycopg.connect(mesh.settings.backends.database_url) as pg:
            return pg.execute("SELECT count(*) FROM messaging.envelopes"
                              " WHERE conversation_id = %s AND sequence = %s",
                              (conv, msg.sequence)).fetchone()[0]
    db = sqlite3.connect(mesh.settings.db_path("messaging"))
    try:
        return db.execute("SELECT count(*) FROM envelopes WHERE conversation_id = ?"
                          " AND sequence = ?", (conv, msg.sequence)).fetchone()[0]
    finally:
        db.close()


def stored_delete_time(mesh, msg: pb.Message) -> float | None:
    """The stored message's delete_time (read directly)."""
    message_id = msg.name.rsplit("/", 1)[1]
    if mesh.settings.backends.storage == "postgres":
        with psycopg.connect(mesh.settings.backends.database_url) as pg:
            return pg.execute("SELECT m.delete_time FROM messaging.message_ids i"
                              " JOIN messaging.messages m ON m.conversation_id ="
                              " i.conversation_id AND m.sequence = i.sequence"
                              " AND m.create_time = i.create_time WHERE i.id = %s",
                              (message_id,)).fetchone()[0]
    db = sqlite3.connect(mesh.settings.db_path("messaging"))
    try:
        return db.execute("SELECT delete_time FROM messages WHERE id = ?",
                          (message_id,)).fetchone()[0]
    finally:
        db.close()


def sender_key(conv: str, body: bytes = b"sk") -> pb.SendMessageRequest:
    return pb.SendMessageRequest(parent=conv, message_id=str(uuid.uuid4()),
                                 sender_key=pb.SenderKeyContent(ciphertext=body))


async def test_group_lifecycle_sender_keys_and_removal(mesh):
    owner, owner2 = await new_user(mesh, 2)
    ann, = await new_user(mesh)
    bob, bob2 = await new_user(mesh, 2)
    group_id = str(uuid.uuid4())
    group, conv = f"groups/{group_id}", f"conversations/{group_id}"
    change = str(uuid.uuid4())
    created = await apply(mesh, group, owner, added=[owner, ann], admins=[owner],
                          change_id=change)
    assert (created.conversation, created.sequence) == (conv, 1)
    replay = await apply(mesh, group, owner, added=[owner, ann, bob], change_id=change)
    assert (replay.conversation, replay.sequence) == (conv, 1)  # idempotent on change_id
    added = await apply(mesh, group, owner, added=[bob], admins=[owner])
    assert added.sequence == 2
    role_only = await apply(mesh, group, owner, admins=[owner, ann])
    assert role_only.sequence == 0  # a role change records no SystemEvent
    boxes = {d.name: Inbox(d) for d in (owner2, ann, bob, bob2)}
    for box in boxes.values():
        await asyncio.wait_for(box.caught_up.wait(), 5)
    sent = (await owner.call("SendMessage", sender_key(conv, b"group secret"))).message
    assert sent.sequence == 3
    for name in (owner2.name, ann.name, bob.name, bob2.name):
        # Entries queued before the streams opened were replayed; wait for the new one.
        await boxes[name].wait(lambda s: s.entries()[-1:] and s.entries()[-1].message.sequence
                               >= sent.sequence)
        got = boxes[name].entries()[-1]
        assert got.message.name == sent.name
        assert got.message.sender_key.ciphertext == b"group secret"
    # bob's first inbox entry is the MEMBERS_ADDED event naming him
    first = boxes[bob.name].entries()[0].message.system_event
    assert first.type == pb.SystemEvent.TYPE_MEMBERS_ADDED and list(first.users) == [bob.user]
    # pairwise in a group covers every member device but the sender's
    await owner.send(conv, [owner2.name, ann.name, bob.name, bob2.name])
    # remove bob: he hears of it, and nothing after it
    removed = await apply(mesh, group, owner, removed=[bob], admins=[owner, ann])
    # MEMBERS_ADDED, the sender-key message, the pairwise one, MEMBERS_REMOVED
    [*_, last] = await boxes[bob.name].wait_entries(4)
    assert last.message.system_event.type == pb.SystemEvent.TYPE_MEMBERS_REMOVED
    assert last.message.sequence == removed.sequence
    after = (await owner.call("SendMessage", sender_key(conv, b"after"))).message
    await boxes[ann.name].wait(lambda s: any(e.message.name == after.name
                                             for e in s.entries()))
    await asyncio.sleep(0.1)
    assert all(e.message.sequence <= removed.sequence for e in boxes[bob.name].entries())
    await fails(bob.call("ListMessages", pb.ListMessagesRequest(parent=conv)),
                grpc.StatusCode.PERMISSION_DENIED, "NOT_A_MEMBER")
    await fails(bob.call("SendMessage", sender_key(conv)), grpc.StatusCode.PERMISSION_DENIED)
    # a pairwise send that still addresses bob's devices is a mismatch now
    await fails(owner.call("SendMessage", send_request(
        conv, [owner2.name, ann.name, bob.name, bob2.name])),
        grpc.StatusCode.FAILED_PRECONDITION, "DEVICE_MISMATCH")
    # CreateConversation for the group returns it to members
    got = await ann.call("CreateConversation", pb.CreateConversationRequest(
        conversation=pb.Conversation(type=pb.Conversation.TYPE_GROUP, group=group)))
    assert got.conversation.name == conv and got.conversation.group == group
    assert list(got.conversation.participants) == []
    # delete the group: the conversation closes, nothing more can be sent
    closed = await apply(mesh, group, owner, deleted=True)
    assert closed.sequence == after.sequence + 1
    await fails(owner.call("SendMessage", sender_key(conv)),
                grpc.StatusCode.FAILED_PRECONDITION, "CONVERSATION_CLOSED")
    hist = await ann.call("ListMessages", pb.ListMessagesRequest(parent=conv, page_size=1))
    assert hist.messages[0].system_event.type == pb.SystemEvent.TYPE_CONVERSATION_CLOSED
    for box in boxes.values():
        await box.close()


async def test_new_member_does_not_get_earlier_group_ciphertext(mesh):
    owner, = await new_user(mesh)
    late, = await new_user(mesh)
    group_id = str(uuid.uuid4())
    conv = f"conversations/{group_id}"
    await apply(mesh, f"groups/{group_id}", owner, added=[owner], admins=[owner])
    early = (await owner.call("SendMessage", sender_key(conv, b"early"))).message
    await apply(mesh, f"groups/{group_id}", owner, added=[late])
    later = (await owner.call("SendMessage", sender_key(conv, b"later"))).message
    hist = await late.call("ListMessages", pb.ListMessagesRequest(parent=conv,
                                                                  order_by="sequence"))
    by_name = {m.name: m for m in hist.messages}
    assert by_name[early.name].WhichOneof("content") is None  # listed, without content
    assert by_name[later.name].sender_key.ciphertext == b"later"


async def test_sender_key_only_in_groups_and_update_conversation_rules(mesh):
    a1, = await new_user(mesh)
    b1, = await new_user(mesh)
    conv = await direct(a1, b1)
    await fails(a1.call("SendMessage", sender_key(conv)), grpc.StatusCode.INVALID_ARGUMENT,
                "SENDER_KEY_NOT_ALLOWED")
    got = (await a1.call("GetConversation", pb.GetConversationRequest(name=conv))).conversation
    await fails(b1.call("UpdateConversation", pb.UpdateConversationRequest(
        conversation=pb.Conversation(name=conv, message_ttl=duration_pb2.Duration(seconds=60),
                                     etag='"999"'))),
        grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    upd = await b1.call("UpdateConversation", pb.UpdateConversationRequest(
        conversation=pb.Conversation(name=conv, message_ttl=duration_pb2.Duration(seconds=60),
                                     etag=got.etag),
        update_mask=field_mask_pb2.FieldMask(paths=["message_ttl"])))
    assert upd.conversation.message_ttl.seconds == 60
    assert upd.conversation.etag != got.etag
    hist = await a1.call("ListMessages", pb.ListMessagesRequest(parent=conv, page_size=1))
    ev = hist.messages[0].system_event
    assert ev.type == pb.SystemEvent.TYPE_MESSAGE_TTL_CHANGED and ev.actor == b1.user
    assert ev.message_ttl.seconds == 60
    msg = await a1.send(conv, [b1.name])
    assert msg.expire_time.ToSeconds() - msg.create_time.ToSeconds() in (59, 60)
    await fails(a1.call("UpdateConversation", pb.UpdateConversationRequest(
        conversation=pb.Conversation(name=conv, message_ttl=duration_pb2.Duration(seconds=1)))),
        grpc.StatusCode.INVALID_ARGUMENT)  # below the contract's 5 s
    # turning it off
    off = await a1.call("UpdateConversation", pb.UpdateConversationRequest(
        conversation=pb.Conversation(name=conv)))
    assert not off.conversation.HasField("message_ttl")
    # in a group, only admins
    owner, = await new_user(mesh)
    group_id = str(uuid.uuid4())
    await apply(mesh, f"groups/{group_id}", owner, added=[owner, a1], admins=[owner])
    gconv = f"conversations/{group_id}"
    await fails(a1.call("UpdateConversation", pb.UpdateConversationRequest(
        conversation=pb.Conversation(name=gconv, message_ttl=duration_pb2.Duration(seconds=60)))),
        grpc.StatusCode.PERMISSION_DENIED, "NOT_AN_ADMIN")
    await owner.call("UpdateConversation", pb.UpdateConversationRequest(
        conversation=pb.Conversation(name=gconv, message_ttl=duration_pb2.Duration(seconds=60))))


async def test_delete_message_leaves_a_tombstone_everywhere(mesh):
    a1, = await new_user(mesh)
    b1, = await new_user(mesh)
    conv = await direct(a1, b1)
    msg = await a1.send(conv, [b1.name], body=b"regret")
    assert stored_envelopes(mesh, msg) == 1
    await fails(b1.call("DeleteMessage", pb.DeleteMessageRequest(name=msg.name)),
                grpc.StatusCode.PERMISSION_DENIED, "NOT_THE_SENDER")
    tomb = (await a1.call("DeleteMessage", pb.DeleteMessageRequest(name=msg.name))).message
    assert tomb.name == msg.name and tomb.sequence == msg.sequence
    assert tomb.HasField("delete_time") and not tomb.sender and not tomb.content_hash
    again = (await a1.call("DeleteMessage", pb.DeleteMessageRequest(name=msg.name))).message
    assert again.delete_time == tomb.delete_time
    # the undelivered inbox copy is erased too
    box = Inbox(b1)
    [*_, entry] = await box.wait_entries(2)
    await box.close()
    assert entry.message.name == msg.name and entry.message.HasField("delete_time")
    assert entry.message.WhichOneof("content") is None
    listed = await b1.call("ListMessages", pb.ListMessagesRequest(parent=conv, page_size=1))
    assert listed.messages[0].HasField("delete_time")
    assert stored_envelopes(mesh, msg) == 0
    await fails(a1.call("DeleteMessage", pb.DeleteMessageRequest(
        name=f"{conv}/messages/{uuid.uuid4()}")), grpc.StatusCode.NOT_FOUND)


async def test_disappearing_messages_expire_to_tombstones(mesh):
    a1, = await new_user(mesh)
    b1, = await new_user(mesh)
    conv = await direct(a1, b1)
    await a1.call("UpdateConversation", pb.UpdateConversationRequest(
        conversation=pb.Conversation(name=conv, message_ttl=duration_pb2.Duration(seconds=5))))
    msg = await a1.send(conv, [b1.name], body=b"ephemeral")
    assert stored_envelopes(mesh, msg) == 1
    assert msg.HasField("expire_time")
    got = (await b1.call("GetMessage", pb.GetMessageRequest(name=msg.name))).message
    assert got.envelope.ciphertext.startswith(b"ephemeral")
    await asyncio.sleep(5.4)  # the contract's minimum TTL is 5 s
    got = (await b1.call("GetMessage", pb.GetMessageRequest(name=msg.name))).message
    assert got.HasField("delete_time") and got.WhichOneof("content") is None
    assert got.delete_time == msg.expire_time
    assert stored_envelopes(mesh, msg) == 0  # the sweeper erased the stored ciphertext
    assert stored_delete_time(mesh, msg) is not None


async def test_non_members_and_foreign_devices_are_refused(mesh):
    a1, a2 = await new_user(mesh, 2)
    b1, = await new_user(mesh)
    eve, = await new_user(mesh)
    conv = await direct(a1, b1)
    msg = await a1.send(conv, [a2.name, b1.name])
    for call in (
        eve.call("GetConversation", pb.GetConversationRequest(name=conv)),
        eve.call("ListMessages", pb.ListMessagesRequest(parent=conv)),
        eve.call("GetMessage", pb.GetMessageRequest(name=msg.name)),
        eve.call("SendMessage", send_request(conv, [a1.name, a2.name, b1.name])),
        eve.call("MarkRead", pb.MarkReadRequest(conversation=conv, read_sequence=1)),
        eve.call("DeleteMessage", pb.DeleteMessageRequest(name=msg.name)),
        eve.call("GetConversation", pb.GetConversationRequest(
            name=f"conversations/{uuid.uuid4()}")),
    ):
        await fails(call, grpc.StatusCode.PERMISSION_DENIED, "NOT_A_MEMBER")
    # a device may only read or acknowledge its own inbox
    theft = eve.subscribe(device=b1.name)
    await fails(_first(theft), grpc.StatusCode.PERMISSION_DENIED, "NOT_CALLING_DEVICE")
    sibling = a1.subscribe(device=a2.name)
    await fails(_first(sibling), grpc.StatusCode.PERMISSION_DENIED, "NOT_CALLING_DEVICE")
    await fails(a1.call("AcknowledgeDeliveries", pb.AcknowledgeDeliveriesRequest(
        device=a2.name, cursor="AQAAAAAAAAABAAAAAA")), grpc.StatusCode.PERMISSION_DENIED)
    me = a1.subscribe(device=f"users/me/devices/{a1.device_id}")
    first = await _first(me)
    assert first.HasField("message") or first.HasField("caught_up")
    me.cancel()
    # no token, a forged token
    stub = a1.stub
    await fails(stub.GetConversation(pb.GetConversationRequest(name=conv)),
                grpc.StatusCode.UNAUTHENTICATED)
    forged = a1.token[:-4] + ("AAAA" if not a1.token.endswith("AAAA") else "BBBB")
    await fails(stub.GetConversation(pb.GetConversationRequest(name=conv),
                                     metadata=(("authorization", f"Bearer {forged}"),)),
                grpc.StatusCode.UNAUTHENTICATED)
    # internal methods are not for clients, even authenticated ones
    await fails(a1.call("CheckConversationMembership", pb.CheckConversationMembershipRequest(
        conversation=conv, user=a1.user)), grpc.StatusCode.UNAUTHENTICATED)


async def _first(call):
    async for item in call:
        return item
    return None


async def test_oversize_sends_are_refused(mesh):
    a1, = await new_user(mesh)
    b1, b2, b3, b4 = await new_user(mesh, 4)
    conv = await direct(a1, b1)
    big = pb.SendMessageRequest(parent=conv, message_id=str(uuid.uuid4()),
                                pairwise=pb.PairwiseContent(envelopes=[pb.Envelope(
                                    recipient_device=b1.name, type=pb.ENVELOPE_TYPE_PREKEY,
                                    ciphertext=b"x" * 65537)]))
    await fails(a1.call("SendMessage", big), grpc.StatusCode.INVALID_ARGUMENT,
                "VALIDATION_FAILED")
    # four 60 KB envelopes: each allowed, together over the per-send cap (200 KB in tests)
    total = pb.SendMessageRequest(parent=conv, message_id=str(uuid.uuid4()),
                                  pairwise=pb.PairwiseContent(envelopes=[pb.Envelope(
                                      recipient_device=d.name, type=pb.ENVELOPE_TYPE_PREKEY,
                                      ciphertext=b"x" * 60_000) for d in (b1, b2, b3, b4)]))
    await fails(a1.call("SendMessage", total), grpc.StatusCode.INVALID_ARGUMENT,
                "MESSAGE_TOO_LARGE")
    dup = pb.SendMessageRequest(parent=conv, message_id=str(uuid.uuid4()),
                                pairwise=pb.PairwiseContent(envelopes=[pb.Envelope(
                                    recipient_device=b1.name, type=pb.ENVELOPE_TYPE_PREKEY,
                                    ciphertext=b"x")] * 2))
    await fails(a1.call("SendMessage", dup), grpc.StatusCode.INVALID_ARGUMENT)


async def test_stream_is_replaced_keeps_alive_and_ends_on_revocation(mesh):
    a1, = await new_user(mesh)
    b1, b2 = await new_user(mesh, 2)
    conv = await direct(a1, b1)
    old = Inbox(b2)
    await asyncio.wait_for(old.caught_up.wait(), 5)
    await old.wait(lambda s: any(r.HasField("keepalive") for r in s.items), 3)
    new = Inbox(b2)
    err = await old.ended()
    assert err is not None and err.code() == grpc.StatusCode.ABORTED
    await asyncio.wait_for(new.caught_up.wait(), 5)
    await a1.send(conv, [b1.name, b2.name])
    await new.wait_entries(2)
    # bob revokes b2 from b1: b2's stream ends, its queue is dropped, it is no recipient now
    await b1.auth.RevokeDevice(auth_pb2.RevokeDeviceRequest(name=b2.name), metadata=b1.md)
    err = await new.ended()
    assert err is not None and err.code() == grpc.StatusCode.UNAUTHENTICATED
    await asyncio.sleep(0.1)
    await a1.send(conv, [b1.name])


async def test_internal_membership_and_peer_checks(mesh):
    a1, = await new_user(mesh)
    b1, = await new_user(mesh)
    c1, = await new_user(mesh)
    conv = await direct(a1, b1)
    stub = internal(mesh)
    yes = await stub.CheckConversationMembership(pb.CheckConversationMembershipRequest(
        conversation=conv, user=b1.user))
    assert yes.member and yes.type == pb.Conversation.TYPE_DIRECT and yes.group == ""
    no = await stub.CheckConversationMembership(pb.CheckConversationMembershipRequest(
        conversation=conv, user=c1.user))
    assert not no.member
    none = await stub.CheckConversationMembership(pb.CheckConversationMembershipRequest(
        conversation=f"conversations/{uuid.uuid4()}", user=a1.user))
    assert not none.member and none.type == pb.Conversation.TYPE_UNSPECIFIED
    group_id = str(uuid.uuid4())
    await apply(mesh, f"groups/{group_id}", c1, added=[c1, a1], admins=[c1])
    g = await stub.CheckConversationMembership(pb.CheckConversationMembershipRequest(
        conversation=f"conversations/{group_id}", user=a1.user))
    assert g.member and g.type == pb.Conversation.TYPE_GROUP and g.group == f"groups/{group_id}"
    loner, = await new_user(mesh)
    peers = await stub.FilterConversationPeers(pb.FilterConversationPeersRequest(
        user=a1.user, users=[loner.user, c1.user, b1.user]))
    assert list(peers.peers) == [c1.user, b1.user]  # request order
    await fails(stub.FilterConversationPeers(pb.FilterConversationPeersRequest(
        user="users/me", users=[b1.user])), grpc.StatusCode.INVALID_ARGUMENT)


async def test_restart_loses_no_pending_entry(tmp_path):
    await restart_loses_no_pending_entry(messaging_test_settings(tmp_path))


async def restart_loses_no_pending_entry(settings) -> None:
    mesh = await start_mesh(settings, ["auth", "messaging"])
    try:
        a1, = await new_user(mesh)
        b1, = await new_user(mesh)
        conv = await direct(a1, b1)
        sent = await asyncio.gather(*[a1.send(conv, [b1.name]) for _ in range(20)])
        box = Inbox(b1)
        entries = await box.wait_entries(21)
        await box.close()
        assert await b1.ack(entries[9].cursor) == 11
    finally:
        await mesh.stop()
    mesh = await start_mesh(settings, ["auth", "messaging"])
    try:
        b1 = Device(b1.user, b1.name, b1.token, mesh)
        a1 = Device(a1.user, a1.name, a1.token, mesh)
        box = Inbox(b1)
        await asyncio.wait_for(box.caught_up.wait(), 5)
        left = box.entries()
        by_seq = sorted(sent, key=lambda m: m.sequence)
        assert [e.message.name for e in left] == [m.name for m in by_seq[9:]]
        assert left[0].cursor == entries[10].cursor  # cursors survive the restart
        more = await a1.send(conv, [b1.name])
        assert more.sequence == 22
        [*_, last] = await box.wait_entries(12)
        assert last.message.name == more.name
        await box.close()
        assert await b1.ack(last.cursor) == 0
    finally:
        await mesh.stop()
