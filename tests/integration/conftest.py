"""Integration fixtures: a service over real gRPC on 127.0.0.1:0 with the real runtime
(GrpcServer, ServerInterceptor, TokenVerifier + JwksKeySource, MemoryRevocationList,
MemoryRateLimiter, MemoryEventBus, Channels)."""

from __future__ import annotations

import dataclasses
import pathlib

import grpc
import pytest
from zynk.auth.v1 import auth_pb2, auth_pb2_grpc

from services.runtime.bus import Event, MemoryEventBus
from services.runtime.cache import MemoryCache
from services.runtime.channels import Channels
from services.runtime.config import Settings
from services.runtime.interceptors import ServerInterceptor
from services.runtime.pubsub import MemoryPubSub
from services.runtime.ratelimit import MemoryRateLimiter
from services.runtime.revocations import MemoryRevocationList
from services.runtime.server import GrpcServer
from services.runtime.shared import Shared
from services.runtime.tokens import JwksKeySource, TokenVerifier
from tests.support.auth import auth_test_settings

INTERNAL_TOKEN = "integration-internal-token"


@dataclasses.dataclass
class AuthHarness:
    settings: Settings
    shared: Shared
    server: GrpcServer
    channel: grpc.aio.Channel
    stub: auth_pb2_grpc.AuthServiceStub
    events: list[Event]

    @property
    def key_path(self) -> pathlib.Path:
        return self.settings.data_dir / "keys" / "jwt-ed25519.pem"

    async def stop(self) -> None:
        await self.channel.close()
        await self.server.stop(0)
        await self.shared.bus.close()
        await self.shared.channels.close()


async def start_auth(settings: Settings, revocations=None) -> AuthHarness:
    """Build the auth service through its composition entry point and serve it."""
    from services.auth.app import build as build_auth

    holder: dict[str, auth_pb2_grpc.AuthServiceStub] = {}

    async def fetch_jwks():
        resp = await holder["stub"].GetJwks(auth_pb2.GetJwksRequest(), timeout=5)
        return [{"kty": k.kty, "crv": k.crv, "x": k.x, "kid": k.kid} for k in resp.keys]

    revocations = revocations or MemoryRevocationList()
    keys = JwksKeySource(fetch_jwks, min_refresh_s=0.0)
    verifier = TokenVerifier(keys, settings.auth.issuer, settings.auth.audience, revocations)
    bus = MemoryEventBus()
    events: list[Event] = []

    async def collect(event: Event) -> None:
        events.append(event)

    bus.subscribe("users.registered", "integration-tests", collect)
    await bus.start()
    shared = Shared(settings=settings, bus=bus, limiter=MemoryRateLimiter(),
                    revocations=revocations,
                    channels=Channels({}, INTERNAL_TOKEN, settings.default_deadline_s),
                    keys=keys, verifier=verifier, internal_token=INTERNAL_TOKEN,
                    pubsub=MemoryPubSub(), cache=MemoryCache())
    spec = await build_auth(shared)
    server = GrpcServer(spec, ServerInterceptor(verifier, INTERNAL_TOKEN),
                        settings.max_message_bytes)
    port = await server.start("127.0.0.1", 0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    holder["stub"] = stub
    return AuthHarness(settings, shared, server, channel, stub, events)


@pytest.fixture(scope="module")
async def auth(tmp_path_factory) -> AuthHarness:
    harness = await start_auth(auth_test_settings(tmp_path_factory.mktemp("auth")))
    yield harness
    await harness.stop()
