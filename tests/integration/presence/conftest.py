"""Presence over real gRPC with the real runtime: built by services/presence/app.py build(),
served by GrpcServer + ServerInterceptor, tokens issued and verified by the real auth
service (tests/integration/conftest.py), and a gRPC MessagingService test double for the
two internal RPCs presence calls."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import uuid

import grpc
import pytest

from services.runtime.backends import ProcessBackends
from services.runtime.bus import MemoryEventBus
from services.runtime.cache import MemoryCache
from services.runtime.channels import Channels
from services.runtime.config import PresenceSettings, Settings
from services.runtime.interceptors import ServerInterceptor
from services.runtime.pubsub import MemoryPubSub
from services.runtime.ratelimit import MemoryRateLimiter
from services.runtime.server import GrpcServer, ServiceSpec
from services.runtime.shared import Shared
from tests.integration.conftest import INTERNAL_TOKEN, AuthHarness
from tests.support.auth import auth_test_settings
from zynk.auth.v1 import auth_pb2
from zynk.messaging.v1 import messaging_pb2, messaging_pb2_grpc
from zynk.presence.v1 import presence_pb2, presence_pb2_grpc

MESSAGING = "zynk.messaging.v1.MessagingService"
PASSWORD = "a long enough password"

# Short enough that expiry, lapses and keepalives happen within a test.
FAST = PresenceSettings(online_ttl_s=1.0, heartbeat_interval_s=0.4, sweep_interval_s=0.05,
                        typing_ttl_s=0.5, keepalive_s=0.3, visibility_cache_s=0.5)


class MessagingDouble(messaging_pb2_grpc.MessagingServiceServicer):
    """A TEST DOUBLE of the neighbouring messaging service, which is built in parallel and
    not in this branch: it answers only the two internal RPCs presence calls
    (CheckConversationMembership, FilterConversationPeers) from an in-test membership table,
    and every other method is UNIMPLEMENTED. It is served by the real runtime (GrpcServer +
    ServerInterceptor), so the contract's ACCESS_INTERNAL check and request validation apply
    exactly as they will to the real service, which replaces it in the end-to-end tests."""

    def __init__(self) -> None:
        self.conversations: dict[str, set[str]] = {}  # conversation id -> user ids
        self.calls: collections.Counter[str] = collections.Counter()
        self.down = False

    def add(self, *user_ids: str) -> str:
        conversation_id = str(uuid.uuid4())
        self.conversations[conversation_id] = set(user_ids)
        return conversation_id

    async def _check_up(self, context) -> None:
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "messaging is down (test)")

    async def CheckConversationMembership(self, request, context):
        self.calls["CheckConversationMembership"] += 1
        await self._check_up(context)
        conversation_id = request.conversation.split("/", 1)[1]
        user_id = request.user.split("/", 1)[1]
        members = self.conversations.get(conversation_id)
        if conversation_id.startswith("notfound-"):
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such conversation (test)")
        if members is None:
            return messaging_pb2.CheckConversationMembershipResponse()
        return messaging_pb2.CheckConversationMembershipResponse(
            member=user_id in members, type=messaging_pb2.Conversation.TYPE_DIRECT)

    async def FilterConversationPeers(self, request, context):
        self.calls["FilterConversationPeers"] += 1
        await self._check_up(context)
        user_id = request.user.split("/", 1)[1]
        peers: set[str] = set()
        for members in self.conversations.values():
            if user_id in members:
                peers |= members
        return messaging_pb2.FilterConversationPeersResponse(
            peers=[u for u in request.users if u.split("/", 1)[1] in peers])


@dataclasses.dataclass
class User:
    id: str
    device_id: str
    token: str

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    @property
    def presence(self) -> str:
        return f"users/{self.id}/presence"


@dataclasses.dataclass
class PresenceHarness:
    settings: Settings
    shared: Shared
    auth: AuthHarness
    messaging: MessagingDouble
    messaging_port: int
    stub: presence_pb2_grpc.PresenceServiceStub
    _servers: list[GrpcServer]
    _channel: grpc.aio.Channel

    async def signup(self) -> User:
        username = f"p_{uuid.uuid4().hex[:12]}"
        await self.auth.stub.Register(auth_pb2.RegisterRequest(username=username,
                                                               password=PASSWORD))
        return await self.login(username)

    async def login(self, username: str) -> User:
        r = await self.auth.stub.Login(auth_pb2.LoginRequest(username=username,
                                                             password=PASSWORD))
        return User(r.user.name.split("/")[1], r.device.name.split("/")[3],
                    r.tokens.access_token)

    async def another_device(self, user: User) -> User:
        me = await self.auth.stub.GetUser(auth_pb2.GetUserRequest(name="users/me"),
                                          metadata=user.md)
        return await self.login(me.user.username)

    async def stop(self) -> None:
        await self._channel.close()
        for server in self._servers:
            await server.stop(0)
        await self.shared.bus.close()
        await self.shared.channels.close()


async def start_messaging_double(interceptor: ServerInterceptor,
                                 settings: Settings) -> tuple[MessagingDouble, GrpcServer, int]:
    double = MessagingDouble()

    def register_double(server) -> None:
        messaging_pb2_grpc.add_MessagingServiceServicer_to_server(double, server)

    double_server = GrpcServer(ServiceSpec("messaging-double", [MESSAGING], register_double),
                               interceptor, settings.max_message_bytes)
    return double, double_server, await double_server.start("127.0.0.1", 0)


async def start_presence(settings: Settings, auth: AuthHarness, interceptor: ServerInterceptor,
                         messaging_port: int, backends: ProcessBackends | None = None
                         ) -> tuple[Shared, GrpcServer, grpc.aio.Channel]:
    """One presence replica built by app.build(): its runtime ports come from `backends`
    (as build_backends makes them for a process), or are in-process ones."""
    from services.presence.app import build

    bus = backends.bus if backends else MemoryEventBus()
    shared = Shared(settings=settings, bus=bus,
                    limiter=backends.limiter if backends else MemoryRateLimiter(),
                    revocations=auth.shared.revocations,
                    channels=Channels({MESSAGING: f"127.0.0.1:{messaging_port}"},
                                      INTERNAL_TOKEN, settings.default_deadline_s),
                    keys=auth.shared.keys, verifier=auth.shared.verifier,
                    internal_token=INTERNAL_TOKEN,
                    pubsub=backends.pubsub if backends else MemoryPubSub(),
                    cache=backends.cache if backends else MemoryCache())
    spec = await build(shared)
    await bus.start()
    server = GrpcServer(spec, interceptor, settings.max_message_bytes)
    port = await server.start("127.0.0.1", 0)
    return shared, server, grpc.aio.insecure_channel(f"127.0.0.1:{port}")


@pytest.fixture(scope="module")
async def presence(auth: AuthHarness, tmp_path_factory) -> PresenceHarness:
    settings = auth_test_settings(tmp_path_factory.mktemp("presence"))
    settings.presence = FAST
    interceptor = ServerInterceptor(auth.shared.verifier, INTERNAL_TOKEN)
    double, double_server, double_port = await start_messaging_double(interceptor, settings)
    shared, server, channel = await start_presence(settings, auth, interceptor, double_port)
    harness = PresenceHarness(settings, shared, auth, double, double_port,
                              presence_pb2_grpc.PresenceServiceStub(channel),
                              [server, double_server], channel)
    yield harness
    await harness.stop()


async def next_change(stream, timeout: float = 3.0) -> presence_pb2.WatchPresenceResponse:
    """The next message of a WatchPresence stream that is not a keepalive."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await stream.read()
            assert msg is not grpc.aio.EOF, "stream ended"
            if msg.WhichOneof("event") != "keepalive":
                return msg
