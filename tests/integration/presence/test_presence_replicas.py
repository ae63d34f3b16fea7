"""Two presence replicas over real gRPC, each with its own runtime backends built by
build_backends (Redis cache group: store, pub/sub, cache, rate limits) on one Redis prefix,
as two pods of the distributed mode: what one replica is told, the other knows and streams.

Watch streams here re-read the store only every 30 s, far beyond these tests, so every
change a stream shows came over Redis pub/sub from the other replica."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets

import grpc
import pytest

from services.presence import wire
from services.runtime.backends import ProcessBackends, build_backends
from services.runtime.config import PresenceSettings
from services.runtime.interceptors import ServerInterceptor
from services.runtime.server import GrpcServer
from tests.integration.conftest import INTERNAL_TOKEN, AuthHarness
from tests.integration.presence.conftest import (
    PASSWORD,
    MessagingDouble,
    User,
    next_change,
    start_messaging_double,
    start_presence,
)
from tests.support.auth import auth_test_settings
from tests.support.backends import KEY_PREFIX, make_settings
from zynk.auth.v1 import auth_pb2
from zynk.presence.v1 import presence_pb2 as pb
from zynk.presence.v1 import presence_pb2_grpc

ONLINE, OFFLINE = pb.PRESENCE_STATE_ONLINE, pb.PRESENCE_STATE_OFFLINE
TTL_S = 1.5

pytestmark = pytest.mark.timeout(30)


@dataclasses.dataclass
class Replica:
    stub: presence_pb2_grpc.PresenceServiceStub
    backends: ProcessBackends
    server: GrpcServer
    channel: grpc.aio.Channel


@dataclasses.dataclass
class Replicas:
    a: Replica
    b: Replica
    auth: AuthHarness
    messaging: MessagingDouble

    async def signup(self) -> User:
        username = f"r_{secrets.token_hex(6)}"
        await self.auth.stub.Register(auth_pb2.RegisterRequest(username=username,
                                                               password=PASSWORD))
        r = await self.auth.stub.Login(auth_pb2.LoginRequest(username=username,
                                                             password=PASSWORD))
        return User(r.user.name.split("/")[1], r.device.name.split("/")[3],
                    r.tokens.access_token)


@pytest.fixture(scope="module")
async def replicas(auth: AuthHarness, redis_url, tmp_path_factory) -> Replicas:
    settings = auth_test_settings(tmp_path_factory.mktemp("replicas"))
    settings.backends = make_settings(cache="redis", redis_url=redis_url,
                                      key_prefix=f"{KEY_PREFIX}r{secrets.token_hex(4)}:"
                                      ).backends
    settings.presence = PresenceSettings(
        online_ttl_s=TTL_S, heartbeat_interval_s=0.5, sweep_interval_s=0.05,
        typing_ttl_s=5.0, keepalive_s=10.0, visibility_cache_s=30.0)
    interceptor = ServerInterceptor(auth.shared.verifier, INTERNAL_TOKEN)
    double, double_server, double_port = await start_messaging_double(interceptor, settings)
    made: list[Replica] = []
    try:
        for _ in range(2):
            # Separate backends (clients, pub/sub connection) and Shared: separate replicas.
            backends = await build_backends(settings)
            _, server, channel = await start_presence(settings, auth, interceptor, double_port,
                                                      backends)
            made.append(Replica(presence_pb2_grpc.PresenceServiceStub(channel), backends,
                                server, channel))
        yield Replicas(made[0], made[1], auth, double)
    finally:
        for r in made:
            await r.channel.close()
            await r.server.stop(0)
            await r.backends.close()
        await double_server.stop(0)


async def heartbeat(replica: Replica, user: User, state=ONLINE) -> pb.HeartbeatResponse:
    return await replica.stub.Heartbeat(pb.HeartbeatRequest(state=state), metadata=user.md)


async def get(replica: Replica, viewer: User, name: str) -> pb.Presence:
    r = await replica.stub.BatchGetPresence(pb.BatchGetPresenceRequest(names=[name]),
                                            metadata=viewer.md)
    return r.presences[0]


async def test_a_heartbeat_on_one_replica_is_read_on_the_other(replicas):
    r = replicas
    alice, bob = await r.signup(), await r.signup()
    r.messaging.add(alice.id, bob.id)
    assert (await heartbeat(r.a, alice)).presence.state == ONLINE
    assert (await get(r.b, bob, alice.presence)).state == ONLINE
    assert (await get(r.b, alice, "users/me/presence")).state == ONLINE
    signed_off = (await heartbeat(r.b, alice, OFFLINE)).presence
    assert signed_off.state == OFFLINE and signed_off.HasField("last_seen_time")
    seen = await get(r.a, bob, alice.presence)
    assert seen.state == OFFLINE and seen.last_seen_time == signed_off.last_seen_time


async def test_a_watch_on_one_replica_streams_changes_and_typing_made_on_the_other(replicas):
    r = replicas
    alice, bob = await r.signup(), await r.signup()
    conversation = f"conversations/{r.messaging.add(alice.id, bob.id)}"
    stream = r.b.stub.WatchPresence(pb.WatchPresenceRequest(names=[alice.presence],
                                                            conversations=[conversation]),
                                    metadata=bob.md)
    try:
        snapshot = await next_change(stream)
        assert snapshot.presence.name == alice.presence and snapshot.presence.state == OFFLINE
        await heartbeat(r.a, alice)
        assert (await next_change(stream)).presence.state == ONLINE
        typing = await r.a.stub.SetTyping(pb.SetTypingRequest(conversation=conversation,
                                                              typing=True), metadata=alice.md)
        msg = await next_change(stream)
        assert msg.typing == pb.TypingIndicator(conversation=conversation,
                                                user=f"users/{alice.id}", typing=True,
                                                expire_time=typing.expire_time)
        await r.a.stub.SetTyping(pb.SetTypingRequest(conversation=conversation, typing=False),
                                 metadata=alice.md)
        stopped = await next_change(stream)
        assert stopped.typing.user == f"users/{alice.id}" and not stopped.typing.typing
        await heartbeat(r.a, alice, OFFLINE)
        offline = await next_change(stream)
        assert offline.presence.state == OFFLINE and offline.presence.HasField("last_seen_time")
    finally:
        stream.cancel()


async def test_a_lapsed_heartbeat_is_reported_once_by_the_two_sweepers(replicas):
    r = replicas
    users = [await r.signup() for _ in range(3)]
    watcher = await r.signup()
    for u in users:
        r.messaging.add(u.id, watcher.id)
    # A listener of its own on the presence channels, to count what the replicas publish.
    sub = await r.a.backends.pubsub.subscribe([wire.user_channel(u.id) for u in users])
    stream = r.b.stub.WatchPresence(pb.WatchPresenceRequest(names=[u.presence for u in users]),
                                    metadata=watcher.md)
    try:
        snapshot = [(await next_change(stream)).presence for _ in users]
        assert [p.state for p in snapshot] == [OFFLINE] * len(users)
        for i, u in enumerate(users):
            await heartbeat(r.a if i % 2 else r.b, u)  # nobody signs off: expiry only
        changes = [(await next_change(stream)).presence for _ in range(2 * len(users))]
        assert sorted((p.name, p.state) for p in changes) == sorted(
            [(u.presence, ONLINE) for u in users] + [(u.presence, OFFLINE) for u in users])
        # Both sweepers keep running (every 50 ms) well past the expiry.
        await asyncio.sleep(TTL_S)
        published = []
        while True:
            try:
                async with asyncio.timeout(0.1):
                    published.append(wire.decode_presence((await sub.get())[1]))
            except TimeoutError:
                break
        assert sorted((p.user_id, p.online) for p in published) == sorted(
            [(u.id, True) for u in users] + [(u.id, False) for u in users])
    finally:
        stream.cancel()
        await sub.close()
