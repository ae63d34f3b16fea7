"""What the group integration tests share: the group service built through its app.py with
the real runtime (GrpcServer, ServerInterceptor, TokenVerifier on auth's JWKS, Channels with
the internal credential, MemoryEventBus), the real auth service beside it, and a recording
MessagingService server for the relay.

MessagingDouble is a test double of a *neighbouring* service, used to check the relay's
protocol (ordering, retries while messaging refuses, idempotent change ids). It runs as a
real gRPC server behind the runtime's own interceptor, so the internal credential and the
contract's buf.validate rules on ApplyGroupMembershipChangeRequest are enforced exactly as
the real messaging service will enforce them. The real messaging service is wired in by the
end-to-end tests."""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import time
import uuid

import grpc

from services.runtime.bus import Event, MemoryEventBus
from services.runtime.cache import MemoryCache
from services.runtime.channels import Channels
from services.runtime.config import GroupSettings, Settings
from services.runtime.errors import Unavailable
from services.runtime.interceptors import ServerInterceptor
from services.runtime.pubsub import MemoryPubSub
from services.runtime.ratelimit import MemoryRateLimiter
from services.runtime.server import GrpcServer, ServiceSpec
from services.runtime.shared import Shared
from services.runtime.tokens import JwksKeySource, TokenVerifier
from tests.integration.conftest import INTERNAL_TOKEN, AuthHarness
from tests.support.auth import auth_test_settings
from zynk.auth.v1 import auth_pb2
from zynk.group.v1 import group_pb2_grpc
from zynk.messaging.v1 import messaging_pb2, messaging_pb2_grpc

AUTH = "zynk.auth.v1.AuthService"
MESSAGING = "zynk.messaging.v1.MessagingService"
PASSWORD = "a long enough password"

# Quick retries so tests that take messaging down finish in well under a second.
FAST_RELAY = dict(relay_inline_wait_s=2.0, relay_backoff_initial_s=0.02,
                  relay_backoff_max_s=0.2, relay_poll_s=0.1, relay_call_timeout_s=2.0)


def group_settings(data_dir: pathlib.Path, **group_overrides) -> Settings:
    settings = auth_test_settings(data_dir)
    settings.group = GroupSettings(**{**FAST_RELAY, **group_overrides})
    return settings


# -- the messaging double ------------------------------------------------------------------


class MessagingDouble(messaging_pb2_grpc.MessagingServiceServicer):
    """Records every ApplyGroupMembershipChange; applies each change_id once, as messaging
    does. `down` refuses calls with UNAVAILABLE; `lose_answers` applies a change and then
    fails the call, as when the answer is lost on the way back."""

    def __init__(self) -> None:
        self.calls: list[messaging_pb2.ApplyGroupMembershipChangeRequest] = []
        self.applied: list[messaging_pb2.ApplyGroupMembershipChangeRequest] = []
        self.down = False
        self.lose_answers = 0
        self._changed = asyncio.Condition()

    def reset(self) -> None:
        self.calls.clear()
        self.applied.clear()
        self.down = False
        self.lose_answers = 0

    async def ApplyGroupMembershipChange(self, request, context):
        self.calls.append(request)
        if self.down:
            raise Unavailable("messaging is down (test double)")
        if all(a.change_id != request.change_id for a in self.applied):
            self.applied.append(request)
        async with self._changed:
            self._changed.notify_all()
        if self.lose_answers > 0:
            self.lose_answers -= 1
            raise Unavailable("answer lost (test double)")
        group_id = request.group.removeprefix("groups/")
        seq = sum(a.group == request.group for a in self.applied)
        return messaging_pb2.ApplyGroupMembershipChangeResponse(
            conversation=f"conversations/{group_id}", sequence=seq)

    def of(self, group: str) -> list[messaging_pb2.ApplyGroupMembershipChangeRequest]:
        """The changes applied for `group` (`groups/{id}`), in arrival order."""
        return [a for a in self.applied if a.group == group]

    async def wait_for(self, predicate, timeout: float = 20.0) -> None:
        # A bound, not a timing: on a loaded 2-core CI machine relaying took over 5 s.
        deadline = time.monotonic() + timeout
        async with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                assert left > 0, "the relay did not deliver in time"
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except TimeoutError:
                    pass


@dataclasses.dataclass
class MessagingHarness:
    double: MessagingDouble
    server: GrpcServer

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    async def stop(self) -> None:
        await self.server.stop(0)


async def start_messaging(double: MessagingDouble | None = None) -> MessagingHarness:
    double = double or MessagingDouble()

    def register(server) -> None:
        messaging_pb2_grpc.add_MessagingServiceServicer_to_server(double, server)

    # No token verifier: only the internal method is called, and it checks the credential.
    server = GrpcServer(ServiceSpec("messaging", [MESSAGING], register),
                        ServerInterceptor(None, INTERNAL_TOKEN), 4 * 1024 * 1024)
    await server.start("127.0.0.1", 0)
    return MessagingHarness(double, server)


# -- the group service ---------------------------------------------------------------------


@dataclasses.dataclass
class GroupHarness:
    settings: Settings
    shared: Shared
    server: GrpcServer
    channel: grpc.aio.Channel
    stub: group_pb2_grpc.GroupServiceStub
    events: list[Event]

    async def stop(self) -> None:
        await self.channel.close()
        await self.server.stop(0)
        await self.shared.bus.close()
        await self.shared.channels.close()


async def start_group(settings: Settings, auth: AuthHarness,
                      messaging_address: str) -> GroupHarness:
    """Build the group service through its composition entry point and serve it."""
    from services.group.app import build as build_group

    async def fetch_jwks():
        resp = await auth.stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=5)
        return [{"kty": k.kty, "crv": k.crv, "x": k.x, "kid": k.kid} for k in resp.keys]

    keys = JwksKeySource(fetch_jwks, min_refresh_s=0.0)
    revocations = auth.shared.revocations  # one process: the mesh shares it
    verifier = TokenVerifier(keys, settings.auth.issuer, settings.auth.audience, revocations)
    bus = MemoryEventBus()
    events: list[Event] = []

    async def collect(event: Event) -> None:
        events.append(event)

    bus.subscribe("groups.created", "integration-tests", collect)
    await bus.start()
    addresses = {AUTH: f"127.0.0.1:{auth.server.port}", MESSAGING: messaging_address}
    shared = Shared(settings=settings, bus=bus, limiter=MemoryRateLimiter(),
                    revocations=revocations,
                    channels=Channels(addresses, INTERNAL_TOKEN, settings.default_deadline_s),
                    keys=keys, verifier=verifier, internal_token=INTERNAL_TOKEN,
                    pubsub=MemoryPubSub(), cache=MemoryCache())
    spec = await build_group(shared)
    server = GrpcServer(spec, ServerInterceptor(verifier, INTERNAL_TOKEN),
                        settings.max_message_bytes)
    port = await server.start("127.0.0.1", 0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return GroupHarness(settings, shared, server, channel,
                        group_pb2_grpc.GroupServiceStub(channel), events)


# -- users ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class User:
    id: str
    token: str

    @property
    def name(self) -> str:
        return f"users/{self.id}"

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)


async def signup(auth: AuthHarness) -> User:
    username = f"u_{uuid.uuid4().hex[:12]}"
    await auth.stub.Register(auth_pb2.RegisterRequest(username=username, password=PASSWORD))
    login = await auth.stub.Login(auth_pb2.LoginRequest(username=username, password=PASSWORD,
                                                        device_display_name="phone"))
    return User(login.user.name.removeprefix("users/"), login.tokens.access_token)


async def signups(auth: AuthHarness, n: int) -> list[User]:
    return list(await asyncio.gather(*(signup(auth) for _ in range(n))))
