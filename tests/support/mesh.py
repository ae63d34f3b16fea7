"""A small mesh for integration tests: several services built through their app.py `build()`
with the real runtime (GrpcServer, ServerInterceptor, TokenVerifier + JwksKeySource from auth,
MemoryRevocationList, MemoryRateLimiter, MemoryEventBus, MemoryPubSub, MemoryCache, Channels
carrying the internal credential), each serving real gRPC on 127.0.0.1:0.

    mesh = await start_mesh(settings, ["auth", "messaging"])
    stub = MessagingServiceStub(mesh.channel("messaging"))       # a client's channel
    internal = mesh.internal_channel("messaging")               # a service's channel
    await mesh.stop()        # then start_mesh() again on the same data dir = a restart

A second "process" of the same deployment (a replica): its own runtime backends built from
the settings (Redis for pub/sub and the cache, so the processes share them) and the
addresses of the services another mesh serves:

    replica = await start_mesh(settings, ["messaging"], backends=await build_backends(settings),
                               peers=mesh.addresses)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import grpc

from services.runtime.backends import ProcessBackends
from services.runtime.bus import Event, MemoryEventBus
from services.runtime.cache import MemoryCache
from services.runtime.catalog import CATALOG
from services.runtime.channels import Channels
from services.runtime.config import Settings
from services.runtime.interceptors import ServerInterceptor
from services.runtime.pubsub import MemoryPubSub
from services.runtime.ratelimit import MemoryRateLimiter
from services.runtime.revocations import MemoryRevocationList
from services.runtime.server import GrpcServer
from services.runtime.shared import Shared
from services.runtime.tokens import JwksKeySource, TokenVerifier
from zynk.auth.v1 import auth_pb2, auth_pb2_grpc

INTERNAL_TOKEN = "mesh-test-internal-token"


@dataclasses.dataclass
class ServiceMesh:
    settings: Settings
    shared: Shared
    servers: dict[str, GrpcServer]
    addresses: dict[str, str]  # gRPC service full name -> host:port
    events: list[Event]  # every event published on the collected topics
    _channels: dict[str, grpc.aio.Channel] = dataclasses.field(default_factory=dict)
    backends: ProcessBackends | None = None  # closed by stop() (bus included)

    def address(self, name: str) -> str:
        return self.addresses[CATALOG[name].full_name]

    def channel(self, name: str) -> grpc.aio.Channel:
        """A plain client channel (no internal credential), reused."""
        ch = self._channels.get(name)
        if ch is None:
            ch = self._channels[name] = grpc.aio.insecure_channel(self.address(name))
        return ch

    def internal_channel(self, name: str) -> grpc.aio.Channel:
        """The channel another service would use (carries the internal credential)."""
        return self.shared.channels.get(CATALOG[name].full_name)

    async def stop(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()
        for server in reversed(list(self.servers.values())):
            await server.stop(0.5)
        if self.backends is not None:
            await self.backends.close()
        else:
            await self.shared.bus.close()
        await self.shared.channels.close()


async def start_mesh(settings: Settings, services: Sequence[str],
                     collect_topics: Sequence[str] = (), *,
                     backends: ProcessBackends | None = None,
                     peers: Mapping[str, str] | None = None) -> ServiceMesh:
    """Build and serve `services` (in order; auth first when listed, as it publishes the
    keys every other service verifies tokens with). `backends`: the process's runtime
    backends (default: in-memory ones); `peers`: gRPC full name -> address of services
    served elsewhere (another mesh)."""
    addresses: dict[str, str] = dict(peers or {})
    channels = Channels(addresses, INTERNAL_TOKEN, settings.default_deadline_s)

    async def fetch_jwks():
        stub = auth_pb2_grpc.AuthServiceStub(channels.get(CATALOG["auth"].full_name))
        resp = await stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=5)
        return [{"kty": k.kty, "crv": k.crv, "x": k.x, "kid": k.kid} for k in resp.keys]

    if backends is None:
        revocations, bus = MemoryRevocationList(), MemoryEventBus()
    else:
        revocations, bus = backends.revocations, backends.bus
    keys = JwksKeySource(fetch_jwks, min_refresh_s=0.0)
    verifier = TokenVerifier(keys, settings.auth.issuer, settings.auth.audience, revocations)
    events: list[Event] = []

    async def collect(event: Event) -> None:
        events.append(event)

    for topic in collect_topics:
        bus.subscribe(topic, "tests.collector", collect)
    if backends is None:
        limiter, pubsub, cache = MemoryRateLimiter(), MemoryPubSub(), MemoryCache()
    else:
        limiter, pubsub, cache = backends.limiter, backends.pubsub, backends.cache
    shared = Shared(settings=settings, bus=bus, limiter=limiter, revocations=revocations,
                    channels=channels, keys=keys, verifier=verifier,
                    internal_token=INTERNAL_TOKEN, pubsub=pubsub, cache=cache)
    interceptor = ServerInterceptor(verifier, INTERNAL_TOKEN)
    mesh = ServiceMesh(settings, shared, {}, addresses, events, backends=backends)
    try:
        for name in services:
            app = __import__(f"services.{name}.app", fromlist=["build"])
            spec = await app.build(shared)
            server = GrpcServer(spec, interceptor, settings.max_message_bytes)
            mesh.servers[name] = server
            port = await server.start("127.0.0.1", 0)
            for full in spec.full_names:
                addresses[full] = f"127.0.0.1:{port}"
        await bus.start()
    except BaseException:
        await mesh.stop()
        raise
    return mesh
