"""The presence service over real gRPC, with the real runtime, real tokens from the auth
service, and a gRPC test double of messaging's two internal RPCs (see conftest)."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest

from tests.integration.presence.conftest import MESSAGING, PresenceHarness, User, next_change
from tests.support.grpc_errors import error_details, fails
from zynk.messaging.v1 import messaging_pb2, messaging_pb2_grpc
from zynk.presence.v1 import presence_pb2

pb = presence_pb2
ONLINE, OFFLINE = pb.PRESENCE_STATE_ONLINE, pb.PRESENCE_STATE_OFFLINE

pytestmark = pytest.mark.timeout(30)


async def heartbeat(h: PresenceHarness, user: User, state=ONLINE) -> pb.HeartbeatResponse:
    return await h.stub.Heartbeat(pb.HeartbeatRequest(state=state), metadata=user.md)


async def get(h: PresenceHarness, viewer: User, *names: str) -> list[pb.Presence]:
    r = await h.stub.BatchGetPresence(pb.BatchGetPresenceRequest(names=list(names)),
                                      metadata=viewer.md)
    return list(r.presences)


async def next_message(stream, timeout: float = 3.0) -> pb.WatchPresenceResponse:
    return await asyncio.wait_for(stream.read(), timeout)


def is_hidden(p: pb.Presence) -> bool:
    return (p.state == OFFLINE and not p.HasField("last_seen_time")
            and not p.HasField("update_time"))


# -- heartbeats ----------------------------------------------------------------------------


async def test_heartbeat_online_then_ttl_expiry_offline_with_last_seen(presence):
    h = presence
    alice = await h.signup()
    r = await heartbeat(h, alice)
    assert r.heartbeat_interval.ToNanoseconds() == int(0.4e9)
    assert r.presence.name == alice.presence and r.presence.state == ONLINE
    assert not r.presence.HasField("last_seen_time")
    [own] = await get(h, alice, "users/me/presence")
    assert own.name == alice.presence and own.state == ONLINE
    started = time.time()
    await asyncio.sleep(h.settings.presence.online_ttl_s + 0.3)
    [own] = await get(h, alice, alice.presence)
    assert own.state == OFFLINE and own.HasField("last_seen_time")
    last_seen = own.last_seen_time.seconds
    assert last_seen % 60 == 0 and started - 60 <= last_seen <= started


async def test_the_sweeper_tells_watchers_when_a_heartbeat_lapses(presence):
    h = presence
    alice, bob = await h.signup(), await h.signup()
    h.messaging.add(alice.id, bob.id)
    await heartbeat(h, alice)
    stream = h.stub.WatchPresence(pb.WatchPresenceRequest(names=[alice.presence]),
                                  metadata=bob.md)
    try:
        first = await next_message(stream)
        assert first.presence.name == alice.presence and first.presence.state == ONLINE
        # Nobody signs alice off: only expiry (the sweeper) can produce this change.
        change = await next_change(stream, 3.0)
        assert change.presence.state == OFFLINE and change.presence.HasField("last_seen_time")
    finally:
        stream.cancel()


async def test_a_user_stays_online_until_the_last_device_signs_off(presence):
    h = presence
    phone = await h.signup()
    laptop = await h.another_device(phone)
    assert (laptop.id, laptop.device_id) != (phone.id, phone.device_id)
    assert laptop.id == phone.id
    await heartbeat(h, phone)
    await heartbeat(h, laptop)
    r = await heartbeat(h, phone, OFFLINE)
    assert r.presence.state == ONLINE  # the laptop is still there
    r = await heartbeat(h, laptop, OFFLINE)
    assert r.presence.state == OFFLINE and r.presence.HasField("last_seen_time")
    [own] = await get(h, phone, "users/me/presence")
    assert own.state == OFFLINE and own.last_seen_time == r.presence.last_seen_time


# -- visibility ----------------------------------------------------------------------------


async def test_strangers_see_nothing_and_peers_see_presence(presence):
    h = presence
    alice, bob, stranger = await h.signup(), await h.signup(), await h.signup()
    h.messaging.add(alice.id, bob.id)
    await heartbeat(h, alice)
    [seen_by_bob] = await get(h, bob, alice.presence)
    assert seen_by_bob.state == ONLINE
    ghost = f"users/{uuid.uuid4()}/presence"
    seen = await get(h, stranger, alice.presence, ghost, bob.presence)
    assert [p.name for p in seen] == [alice.presence, ghost, bob.presence]
    # Online alice, a user that does not exist and offline bob all look the same.
    assert all(is_hidden(p) for p in seen)
    await heartbeat(h, alice, OFFLINE)
    [seen_by_bob] = await get(h, bob, alice.presence)
    assert seen_by_bob.state == OFFLINE and seen_by_bob.HasField("last_seen_time")
    [seen] = await get(h, stranger, alice.presence)
    assert is_hidden(seen)


async def test_visibility_answers_are_cached(presence):
    h = presence
    alice, bob = await h.signup(), await h.signup()
    h.messaging.add(alice.id, bob.id)
    before = h.messaging.calls["FilterConversationPeers"]
    for _ in range(3):
        await get(h, alice, bob.presence, "users/me/presence")
    assert h.messaging.calls["FilterConversationPeers"] == before + 1


async def test_strangers_watching_get_no_changes(presence):
    h = presence
    alice, stranger = await h.signup(), await h.signup()
    stream = h.stub.WatchPresence(pb.WatchPresenceRequest(names=[alice.presence]),
                                  metadata=stranger.md)
    try:
        assert is_hidden((await next_message(stream)).presence)
        await heartbeat(h, alice)
        msg = await next_message(stream, 1.0)
        assert msg.WhichOneof("event") == "keepalive"
    finally:
        stream.cancel()


async def test_messaging_down_means_unavailable_not_visible(presence):
    h = presence
    alice, bob = await h.signup(), await h.signup()
    h.messaging.add(alice.id, bob.id)
    h.messaging.down = True
    try:
        err = await fails(get(h, alice, bob.presence), grpc.StatusCode.UNAVAILABLE)
        assert error_details(err)[0] == "MEMBERSHIP_UNAVAILABLE"
        conversation = f"conversations/{next(iter(h.messaging.conversations))}"
        await fails(h.stub.SetTyping(pb.SetTypingRequest(conversation=conversation,
                                                         typing=True), metadata=alice.md),
                    grpc.StatusCode.UNAVAILABLE)
        [own] = await get(h, alice, "users/me/presence")  # needs no messaging
        assert own.name == alice.presence
    finally:
        h.messaging.down = False


async def test_the_messaging_double_only_answers_the_mesh(presence):
    """Presence's calls succeed above because its channel presents the internal credential;
    the same call without it is refused by the runtime in front of the double."""
    h = presence
    async with grpc.aio.insecure_channel(f"127.0.0.1:{h.messaging_port}") as ch:
        stub = messaging_pb2_grpc.MessagingServiceStub(ch)
        await fails(stub.FilterConversationPeers(messaging_pb2.FilterConversationPeersRequest(
            user="users/x")), grpc.StatusCode.UNAUTHENTICATED)
    stub = messaging_pb2_grpc.MessagingServiceStub(h.shared.channels.get(MESSAGING))
    await stub.FilterConversationPeers(messaging_pb2.FilterConversationPeersRequest(
        user="users/x"))


# -- watching and typing -------------------------------------------------------------------


async def test_watch_streams_presence_typing_and_keepalives(presence):
    h = presence
    alice, bob = await h.signup(), await h.signup()
    conversation = f"conversations/{h.messaging.add(alice.id, bob.id)}"
    stream = h.stub.WatchPresence(pb.WatchPresenceRequest(names=[alice.presence],
                                                          conversations=[conversation]),
                                  metadata=bob.md)
    try:
        snapshot = await next_message(stream)
        assert snapshot.presence.name == alice.presence and snapshot.presence.state == OFFLINE
        await heartbeat(h, alice)
        online = await next_change(stream)
        assert online.presence.state == ONLINE
        typing = await h.stub.SetTyping(pb.SetTypingRequest(conversation=conversation,
                                                            typing=True), metadata=alice.md)
        assert typing.HasField("expire_time")
        msg = await next_change(stream)
        assert msg.typing == pb.TypingIndicator(conversation=conversation,
                                                user=f"users/{alice.id}", typing=True,
                                                expire_time=typing.expire_time)
        # Not refreshed: the indicator lapses by itself.
        lapsed = await next_change(stream, 2.0)
        assert lapsed.typing.user == f"users/{alice.id}" and not lapsed.typing.typing
        msg = await next_message(stream, 1.0)
        assert msg.WhichOneof("event") == "keepalive" and msg.keepalive.HasField("server_time")
        await heartbeat(h, alice, OFFLINE)
        offline = await next_change(stream)
        assert offline.presence.state == OFFLINE and offline.presence.HasField("last_seen_time")
    finally:
        stream.cancel()


async def test_cancelling_a_watch_releases_it(presence):
    h = presence
    alice = await h.signup()
    streams = []
    for _ in range(h.settings.presence.max_watches_per_user):
        s = h.stub.WatchPresence(pb.WatchPresenceRequest(names=["users/me/presence"]),
                                 metadata=alice.md)
        await next_message(s)
        streams.append(s)
    extra = h.stub.WatchPresence(pb.WatchPresenceRequest(names=["users/me/presence"]),
                                 metadata=alice.md)
    err = await fails(extra.read(), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert error_details(err)[0] == "TOO_MANY_WATCHES"
    for s in streams:
        s.cancel()
    # The server notices the cancellations and frees the slots.
    async with asyncio.timeout(5):
        while True:
            again = h.stub.WatchPresence(pb.WatchPresenceRequest(names=["users/me/presence"]),
                                         metadata=alice.md)
            try:
                await next_message(again)
                again.cancel()
                break
            except grpc.aio.AioRpcError as e:
                assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                await asyncio.sleep(0.05)


async def test_typing_and_watching_need_membership(presence):
    h = presence
    alice, bob, mallory = await h.signup(), await h.signup(), await h.signup()
    conversation = f"conversations/{h.messaging.add(alice.id, bob.id)}"
    missing = f"conversations/{uuid.uuid4()}"
    not_found = f"conversations/notfound-{uuid.uuid4().hex}"  # messaging answers NOT_FOUND
    for target in (conversation, missing, not_found):
        err = await fails(h.stub.SetTyping(pb.SetTypingRequest(conversation=target,
                                                               typing=True),
                                           metadata=mallory.md),
                          grpc.StatusCode.PERMISSION_DENIED)
        assert error_details(err)[0] == "NOT_A_MEMBER"
        stream = h.stub.WatchPresence(pb.WatchPresenceRequest(conversations=[target]),
                                      metadata=mallory.md)
        await fails(stream.read(), grpc.StatusCode.PERMISSION_DENIED)
    r = await h.stub.SetTyping(pb.SetTypingRequest(conversation=conversation, typing=False),
                               metadata=alice.md)
    assert not r.HasField("expire_time")


# -- bad input -----------------------------------------------------------------------------


async def test_bad_input_is_refused_with_the_violated_fields(presence):
    h = presence
    alice = await h.signup()
    cases = [
        (h.stub.BatchGetPresence(pb.BatchGetPresenceRequest(), metadata=alice.md), "names"),
        (h.stub.BatchGetPresence(pb.BatchGetPresenceRequest(
            names=[f"users/u{i}/presence" for i in range(101)]), metadata=alice.md), "names"),
        (h.stub.BatchGetPresence(pb.BatchGetPresenceRequest(
            names=["users/../presence"]), metadata=alice.md), "names[0]"),
        (h.stub.BatchGetPresence(pb.BatchGetPresenceRequest(
            names=["users/a/presence", "users/a/presence"]), metadata=alice.md), "names"),
        (h.stub.Heartbeat(pb.HeartbeatRequest(state=7), metadata=alice.md), "state"),
        (h.stub.SetTyping(pb.SetTypingRequest(conversation="groups/x", typing=True),
                          metadata=alice.md), "conversation"),
        (h.stub.SetTyping(pb.SetTypingRequest(typing=True), metadata=alice.md),
         "conversation"),
    ]
    for call, field in cases:
        err = await fails(call, grpc.StatusCode.INVALID_ARGUMENT)
        reason, violations = error_details(err)
        fields = [f for f, _ in violations]
        assert reason == "VALIDATION_FAILED" and field in fields, (field, fields)
    for request in (pb.WatchPresenceRequest(),
                    pb.WatchPresenceRequest(conversations=["conversations/a b"]),
                    pb.WatchPresenceRequest(names=[f"users/u{i}/presence" for i in range(101)])):
        err = await fails(h.stub.WatchPresence(request, metadata=alice.md).read(),
                          grpc.StatusCode.INVALID_ARGUMENT)
        assert error_details(err)[0] == "VALIDATION_FAILED"


async def test_every_method_needs_a_token(presence):
    h = presence
    await fails(h.stub.Heartbeat(pb.HeartbeatRequest()), grpc.StatusCode.UNAUTHENTICATED)
    await fails(h.stub.BatchGetPresence(pb.BatchGetPresenceRequest(
        names=["users/me/presence"])), grpc.StatusCode.UNAUTHENTICATED)
    await fails(h.stub.SetTyping(pb.SetTypingRequest(conversation="conversations/c")),
                grpc.StatusCode.UNAUTHENTICATED)
    await fails(h.stub.WatchPresence(pb.WatchPresenceRequest(
        names=["users/me/presence"])).read(), grpc.StatusCode.UNAUTHENTICATED)
    bad = (("authorization", "Bearer not-a-token"),)
    await fails(h.stub.Heartbeat(pb.HeartbeatRequest(), metadata=bad),
                grpc.StatusCode.UNAUTHENTICATED)
