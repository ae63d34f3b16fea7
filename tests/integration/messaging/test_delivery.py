"""Direct conversations over real gRPC: envelopes, idempotency, the inbox (replay,
acknowledgement, resume), receipts and read positions."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import grpc
from google.protobuf import json_format

from services.messaging.cursors import encode_cursor
from services.messaging.hashing import EnvelopeDigest, pairwise_content_hash
from tests.integration.messaging.conftest import (
    Inbox,
    direct,
    login,
    new_user,
    send_request,
)
from tests.support.grpc_errors import error_info, fails
from zynk.auth.v1 import auth_pb2
from zynk.events.v1 import events_pb2
from zynk.messaging.v1 import messaging_pb2 as pb


async def test_two_users_two_devices_exchange_envelopes(mesh):
    a1, a2 = await new_user(mesh, 2)
    b1, b2 = await new_user(mesh, 2)
    conv = await direct(a1, b1)
    assert conv == await direct(b2, a2)  # get-or-create: one direct conversation per pair
    inboxes = {d.name: Inbox(d) for d in (a2, b1, b2)}
    for box in inboxes.values():
        await asyncio.wait_for(box.caught_up.wait(), 5)
    first = await a1.send(conv, [a2.name, b1.name, b2.name], body=b"hello")
    assert first.sequence == 2  # 1 is the CONVERSATION_CREATED SystemEvent
    assert first.sender == a1.user and first.sender_device == a1.name
    assert not first.HasField("envelope")  # the sender holds no envelope of its own
    for dev in (a2, b1, b2):
        [*_, got] = await inboxes[dev.name].wait_entries(2)
        assert got.message.name == first.name
        assert got.message.envelope.recipient_device == dev.name  # only its own envelope
        assert got.message.envelope.ciphertext == b"hello|" + dev.name.encode()
        assert got.message.content_hash == first.content_hash
    reply = await b1.send(conv, [a1.name, a2.name, b2.name], body=b"hi")
    assert reply.sequence == 3
    [*_, got] = await inboxes[a2.name].wait_entries(3)
    assert got.message.envelope.ciphertext == b"hi|" + a2.name.encode()
    assert got.message.sender_device == b1.name
    for box in inboxes.values():
        await box.close()
    # messages.sent went out through the outbox with the content hash
    await asyncio.sleep(0.1)
    sent = [events_pb2.EventEnvelope.FromString(e.payload) for e in mesh.events
            if e.topic == "messages.sent"]
    mine = [e.message_sent for e in sent if e.message_sent.message == first.name]
    assert len(mine) == 1 and mine[0].content_hash == first.content_hash
    assert mine[0].envelope_count == 3 and mine[0].sequence == 2


async def test_device_mismatch_then_success_with_same_id(mesh):
    a1, a2 = await new_user(mesh, 2)
    b1, b2 = await new_user(mesh, 2)
    conv = await direct(a1, b1)
    mid = str(uuid.uuid4())
    err = await fails(a1.call("SendMessage", send_request(conv, [a2.name, b1.name], mid)),
                      grpc.StatusCode.FAILED_PRECONDITION, "DEVICE_MISMATCH")
    info = error_info(err)
    assert info.metadata["missing_devices"] == b2.name
    assert info.metadata["extra_devices"] == ""
    stranger = f"{b1.user}/devices/{uuid.uuid4()}"
    err = await fails(a1.call("SendMessage", send_request(
        conv, [a2.name, b1.name, b2.name, stranger, a1.name], mid)),
        grpc.StatusCode.FAILED_PRECONDITION, "DEVICE_MISMATCH")
    assert set(error_info(err).metadata["extra_devices"].split(",")) == {stranger, a1.name}
    ok = await a1.send(conv, [a2.name, b1.name, b2.name], mid)
    assert ok.name == f"{conv}/messages/{mid}"
    # a device that logs in afterwards must be covered (devices.changed drops the cache)
    me = await b1.auth.GetUser(auth_pb2.GetUserRequest(name="users/me"), metadata=b1.md)
    b3 = await login(mesh, me.user.username)
    await asyncio.sleep(0.05)
    err = await fails(a1.call("SendMessage", send_request(conv, [a2.name, b1.name, b2.name])),
                      grpc.StatusCode.FAILED_PRECONDITION, "DEVICE_MISMATCH")
    assert error_info(err).metadata["missing_devices"] == b3.name
    await a1.send(conv, [a2.name, b1.name, b2.name, b3.name])


async def test_stale_device_cache_never_wrongly_rejects(mesh):
    a1, = await new_user(mesh)
    b1, = await new_user(mesh)
    conv = await direct(a1, b1)
    await a1.send(conv, [b1.name])  # caches both device lists
    # poison the cache as if it had missed a revocation: a device that does not exist
    ghost = f"{b1.user}/devices/{uuid.uuid4()}"
    await mesh.shared.cache.set(f"msg:devices:{b1.user_id}", auth_pb2.UserDevices(
        user=b1.user, devices=[b1.name, ghost]).SerializeToString(), 60)
    msg = await a1.send(conv, [b1.name])  # refetched fresh before refusing
    assert msg.sequence == 3


async def test_retried_send_is_not_duplicated(mesh):
    a1, = await new_user(mesh)
    b1, = await new_user(mesh)
    c1, = await new_user(mesh)
    conv = await direct(a1, b1)
    mid = str(uuid.uuid4())
    first = await a1.send(conv, [b1.name], mid, b"same")
    again = await a1.send(conv, [b1.name], mid.upper(), b"same")
    assert again == first
    await fails(a1.call("SendMessage", send_request(conv, [b1.name], mid, b"other")),
                grpc.StatusCode.ALREADY_EXISTS, "MESSAGE_ID_REUSED")
    # the same id from another sender (another conversation) is refused too
    other = await direct(c1, b1)
    await fails(c1.call("SendMessage", send_request(other, [b1.name], mid, b"same")),
                grpc.StatusCode.ALREADY_EXISTS, "MESSAGE_ID_REUSED")
    box = Inbox(b1)
    await asyncio.wait_for(box.caught_up.wait(), 5)
    names_ = [e.message.name for e in box.entries()]
    assert names_.count(first.name) == 1
    await box.close()
    listed = await b1.call("ListMessages", pb.ListMessagesRequest(parent=conv))
    assert [m.sequence for m in listed.messages] == [2, 1]


async def test_concurrent_sends_get_gapless_sequences(mesh):
    a1, a2 = await new_user(mesh, 2)
    b1, = await new_user(mesh)
    conv = await direct(a1, b1)
    sends = [a1.send(conv, [a2.name, b1.name]) for _ in range(40)]
    sends += [a2.send(conv, [a1.name, b1.name]) for _ in range(40)]
    sent = await asyncio.gather(*sends)
    assert sorted(m.sequence for m in sent) == list(range(2, 82))
    box = Inbox(b1)
    await asyncio.wait_for(box.caught_up.wait(), 5)
    seqs = [e.message.sequence for e in box.entries()]
    assert seqs == list(range(1, 82))  # the inbox is in commit (= sequence) order
    await box.close()


async def test_inbox_replay_ack_and_resume_without_loss_or_duplicates(mesh):
    a1, = await new_user(mesh)
    b1, = await new_user(mesh)
    conv = await direct(a1, b1)
    sent = [await a1.send(conv, [b1.name]) for _ in range(5)]
    box = Inbox(b1)
    await asyncio.wait_for(box.caught_up.wait(), 5)
    entries = box.entries()
    assert [e.message.sequence for e in entries] == [1, 2, 3, 4, 5, 6]
    assert box.items[len(entries)].HasField("caught_up")
    live = await a1.send(conv, [b1.name])
    got = await box.wait_entries(7)
    assert got[-1].message.name == live.name
    await box.close()
    # acknowledge through the 3rd entry: those leave the queue
    assert await b1.ack(entries[2].cursor) == 4
    again = Inbox(b1)
    await asyncio.wait_for(again.caught_up.wait(), 5)
    assert [e.message.name for e in again.entries()] == [m.name for m in sent[2:]] + [live.name]
    await again.close()
    # resume after a processed-but-unacknowledged cursor: only what follows
    resumed = Inbox(b1, after_cursor=entries[4].cursor)
    await asyncio.wait_for(resumed.caught_up.wait(), 5)
    assert [e.message.name for e in resumed.entries()] == [sent[4].name, live.name]
    await resumed.close()
    # acknowledging an older cursor again changes nothing; everything: queue empty
    assert await b1.ack(entries[1].cursor) == 4
    assert await b1.ack(got[-1].cursor) == 0


async def test_cursor_validation(mesh):
    a1, a2 = await new_user(mesh, 2)
    b1, = await new_user(mesh)
    conv = await direct(a1, b1)
    await a1.send(conv, [a2.name, b1.name])
    box = Inbox(b1)
    [*_, entry] = await box.wait_entries(2)
    await box.close()
    # a cursor of another device, garbage, and a cursor beyond the inbox are refused
    await fails(a2.call("AcknowledgeDeliveries", pb.AcknowledgeDeliveriesRequest(
        device=a2.name, cursor=entry.cursor)), grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_CURSOR")
    await fails(b1.call("AcknowledgeDeliveries", pb.AcknowledgeDeliveriesRequest(
        device=b1.name, cursor="not-a-cursor")), grpc.StatusCode.INVALID_ARGUMENT)
    await fails(b1.call("AcknowledgeDeliveries", pb.AcknowledgeDeliveriesRequest(
        device=b1.name, cursor=encode_cursor(b1.device_id, 999))),
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CURSOR")
    ahead = Inbox(b1, after_cursor=encode_cursor(b1.device_id, 999))
    err = await ahead.ended()
    assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_delivered_receipts_one_per_sender_and_conversation(mesh):
    a1, a2 = await new_user(mesh, 2)
    b1, = await new_user(mesh)
    conv = await direct(a1, b1)
    sent = [await a1.send(conv, [a2.name, b1.name]) for _ in range(3)]
    sent.append(await a2.send(conv, [a1.name, b1.name]))
    a1_box = Inbox(a1)
    await asyncio.wait_for(a1_box.caught_up.wait(), 5)
    before = len(a1_box.entries())
    b_box = Inbox(b1)
    entries = await b_box.wait_entries(5)
    assert await b1.ack(entries[-1].cursor) == 0
    await b_box.close()
    got = await a1_box.wait_entries(before + 1)
    receipts = [e.receipt for e in got if e.HasField("receipt")]
    assert len(receipts) == 1  # one per (sender, conversation) per acknowledgement
    r = receipts[0]
    assert r.type == pb.RECEIPT_TYPE_DELIVERED and r.user == b1.user
    assert r.conversation == conv
    assert list(r.messages) == [m.name for m in sent]
    await a1_box.close()
    listed = await a1.call("ListReceipts", pb.ListReceiptsRequest(parent=sent[0].name))
    assert [x.user for x in listed.receipts] == [b1.user]
    assert listed.receipts[0].HasField("deliver_time")
    assert not listed.receipts[0].HasField("read_time")
    await fails(b1.call("ListReceipts", pb.ListReceiptsRequest(parent=sent[0].name)),
                grpc.StatusCode.PERMISSION_DENIED, "NOT_THE_SENDER")
    await asyncio.sleep(0.1)
    delivered = [events_pb2.EventEnvelope.FromString(e.payload).message_delivered
                 for e in mesh.events if e.topic == "messages.delivered"]
    assert {d.message for d in delivered if d.recipient_device == b1.name} >= {
        m.name for m in sent}


async def test_mark_read_syncs_devices_and_tells_senders(mesh):
    a1, = await new_user(mesh)
    b1, b2 = await new_user(mesh, 2)
    conv = await direct(a1, b1)
    await b2.send(conv, [a1.name, b1.name])  # b2 has an inbox from now on
    sent = [await a1.send(conv, [b1.name, b2.name]) for _ in range(3)]
    a_box, b2_box = Inbox(a1), Inbox(b2)
    await asyncio.wait_for(a_box.caught_up.wait(), 5)
    await asyncio.wait_for(b2_box.caught_up.wait(), 5)
    na, nb = len(a_box.entries()), len(b2_box.entries())
    resp = await b1.call("MarkRead", pb.MarkReadRequest(conversation=conv,
                                                        read_sequence=sent[1].sequence))
    assert resp.read_sequence == sent[1].sequence
    [*_, state] = await b2_box.wait_entries(nb + 1)
    assert state.read_state.read_sequence == sent[1].sequence
    [*_, receipt] = await a_box.wait_entries(na + 1)
    assert receipt.receipt.type == pb.RECEIPT_TYPE_READ
    assert receipt.receipt.read_sequence == sent[1].sequence
    assert receipt.receipt.user == b1.user
    # monotonic: an older position is ignored
    resp = await b1.call("MarkRead", pb.MarkReadRequest(conversation=conv, read_sequence=1))
    assert resp.read_sequence == sent[1].sequence
    # suppressed: devices sync, senders hear nothing
    await b1.call("MarkRead", pb.MarkReadRequest(conversation=conv,
                                                 read_sequence=sent[2].sequence,
                                                 suppress_receipts=True))
    [*_, state] = await b2_box.wait_entries(nb + 2)
    assert state.read_state.read_sequence == sent[2].sequence
    await asyncio.sleep(0.2)
    assert len(a_box.entries()) == na + 1
    got = await b1.call("GetConversation", pb.GetConversationRequest(name=conv))
    assert got.conversation.read_sequence == sent[2].sequence
    receipts = await a1.call("ListReceipts", pb.ListReceiptsRequest(parent=sent[1].name))
    assert receipts.receipts[0].HasField("read_time")
    # read with receipts suppressed and never delivered: the sender learns nothing
    receipts = await a1.call("ListReceipts", pb.ListReceiptsRequest(parent=sent[2].name))
    assert list(receipts.receipts) == []
    await fails(b1.call("MarkRead", pb.MarkReadRequest(conversation=conv, read_sequence=999)),
                grpc.StatusCode.INVALID_ARGUMENT, "SEQUENCE_AHEAD")
    await a_box.close()
    await b2_box.close()


async def test_get_message_digests_recompute_the_content_hash(mesh):
    a1, a2 = await new_user(mesh, 2)
    b1, = await new_user(mesh)
    conv = await direct(a1, b1)
    sent = await a1.send(conv, [a2.name, b1.name], body=b"x" * 100)
    got = (await b1.call("GetMessage", pb.GetMessageRequest(name=sent.name))).message
    assert got.envelope.recipient_device == b1.name
    digests = [EnvelopeDigest(d.recipient_device, d.type, d.ciphertext_sha256)
               for d in got.envelope_digests]
    assert [d.recipient_device for d in digests] == sorted([a2.name, b1.name])
    assert pairwise_content_hash(digests) == got.content_hash == sent.content_hash
    own = next(d for d in digests if d.recipient_device == b1.name)
    assert own.ciphertext_sha256 == hashlib.sha256(got.envelope.ciphertext).digest()


async def test_list_messages_ranges_orders_and_pages(mesh):
    a1, = await new_user(mesh)
    b1, = await new_user(mesh)
    conv = await direct(a1, b1)
    for _ in range(6):
        await a1.send(conv, [b1.name])
    seen, token = [], ""
    while True:
        page = await b1.call("ListMessages", pb.ListMessagesRequest(
            parent=conv, page_size=2, page_token=token, order_by="sequence", min_sequence=2))
        seen += [m.sequence for m in page.messages]
        token = page.next_page_token
        if not token:
            break
    assert seen == [2, 3, 4, 5, 6, 7]
    desc = await b1.call("ListMessages", pb.ListMessagesRequest(
        parent=conv, min_sequence=3, max_sequence=5))
    assert [m.sequence for m in desc.messages] == [5, 4, 3]
    assert all(m.envelope.recipient_device == b1.name for m in desc.messages)
    page = await b1.call("ListMessages", pb.ListMessagesRequest(parent=conv, page_size=2))
    await fails(b1.call("ListMessages", pb.ListMessagesRequest(
        parent=conv, page_size=2, page_token=page.next_page_token, order_by="sequence")),
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")
    # the sender's own device sees its messages without content
    mine = await a1.call("ListMessages", pb.ListMessagesRequest(parent=conv, max_sequence=2))
    assert mine.messages[0].WhichOneof("content") is None
    assert mine.messages[1].HasField("system_event")


async def test_list_conversations_most_recent_first_with_pages(mesh):
    me, = await new_user(mesh)
    others = [(await new_user(mesh))[0] for _ in range(3)]
    convs = [await direct(me, o) for o in others]
    await me.send(convs[0], [others[0].name])  # the first becomes the most recent
    token, seen = "", []
    while True:
        page = await me.call("ListConversations", pb.ListConversationsRequest(
            page_size=2, page_token=token))
        seen += [c.name for c in page.conversations]
        token = page.next_page_token
        if not token:
            break
    assert seen == [convs[0], convs[2], convs[1]]
    first = await me.call("ListConversations", pb.ListConversationsRequest(page_size=1))
    await fails(others[0].call("ListConversations", pb.ListConversationsRequest(
        page_token=first.next_page_token)), grpc.StatusCode.INVALID_ARGUMENT)
    got = (await me.call("GetConversation", pb.GetConversationRequest(name=convs[0])))
    c = got.conversation
    assert c.type == pb.Conversation.TYPE_DIRECT and c.last_sequence == 2
    assert sorted(c.participants) == sorted([me.user, others[0].user])
    assert json_format.MessageToDict(c)["etag"]


async def test_create_direct_rules(mesh):
    a1, = await new_user(mesh)
    await fails(a1.call("CreateConversation", pb.CreateConversationRequest(
        conversation=pb.Conversation(type=pb.Conversation.TYPE_DIRECT,
                                     participants=["users/me"]))),
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PARTICIPANTS")
    await fails(a1.call("CreateConversation", pb.CreateConversationRequest(
        conversation=pb.Conversation(type=pb.Conversation.TYPE_DIRECT,
                                     participants=[f"users/{uuid.uuid4()}"]))),
        grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    b1, = await new_user(mesh)
    # racing creators converge on one conversation
    made = await asyncio.gather(*[direct(a1, b1) for _ in range(5)], direct(b1, a1))
    assert len(set(made)) == 1
    resp = await a1.call("CreateConversation", pb.CreateConversationRequest(
        conversation=pb.Conversation(type=pb.Conversation.TYPE_DIRECT,
                                     participants=["users/me", b1.user])))
    assert resp.conversation.name == made[0]
