"""The embedded mesh: the composition root for `zynk up`.

Every service gets its own grpc.aio server on its own port and the gateway talks to them
over real gRPC, exactly as in the distributed mode; only the backends are in-process
(SQLite files under the data directory, in-memory bus, cache and rate limits)."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import importlib.util
import pathlib
import secrets

import grpc

from services.runtime import logging as zlog
from services.runtime.backends import ProcessBackends, build_backends
from services.runtime.catalog import CATALOG
from services.runtime.channels import Channels
from services.runtime.config import Settings
from services.runtime.interceptors import ServerInterceptor
from services.runtime.server import GrpcServer, ServiceSpec, unimplemented_service
from services.runtime.shared import Shared
from services.runtime.tokens import JwksKeySource, TokenVerifier

log = zlog.get("mesh")

NOT_BUILT = "it arrives with a later issue"


@dataclasses.dataclass
class ServiceStatus:
    name: str
    full_name: str
    address: str
    implemented: bool


def service_app(name: str):
    """The service's wiring module (services/<name>/app.py), or None if not built yet."""
    if importlib.util.find_spec(f"services.{name}") is None:
        return None
    if importlib.util.find_spec(f"services.{name}.app") is None:
        return None
    return importlib.import_module(f"services.{name}.app")


class EmbeddedMesh:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.addresses: dict[str, str] = {}
        self.services: list[ServiceStatus] = []
        self.gateway_url = ""
        self._servers: list[GrpcServer] = []
        self._gateway = None
        self._shared: Shared | None = None
        self._edge_channels: Channels | None = None
        self._backends: ProcessBackends | None = None
        self._realtime_channels: dict[str, grpc.aio.Channel] = {}

    async def start(self) -> EmbeddedMesh:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        # One process: the internal credential never leaves it, so a fresh one per start.
        internal_token = secrets.token_urlsafe(32)
        self._backends = backends = await build_backends(s)
        revocations = backends.revocations
        channels = Channels(self.addresses, internal_token, s.default_deadline_s)
        auth_full = CATALOG["auth"].full_name

        async def fetch_jwks():
            pb2 = CATALOG["auth"].pb2
            stub = CATALOG["auth"].pb2_grpc.AuthServiceStub(channels.get(auth_full))
            from google.protobuf import json_format

            resp = await stub.GetJwks(pb2.GetJwksRequest(), timeout=5)
            return [json_format.MessageToDict(k, preserving_proto_field_name=True)
                    for k in resp.keys]

        keys = JwksKeySource(fetch_jwks)
        verifier = TokenVerifier(keys, s.auth.issuer, s.auth.audience, revocations)
        self._shared = shared = Shared(
            settings=s, bus=backends.bus, limiter=backends.limiter,
            revocations=revocations, channels=channels, keys=keys, verifier=verifier,
            internal_token=internal_token, pubsub=backends.pubsub, cache=backends.cache,
        )
        interceptor = ServerInterceptor(verifier, internal_token)
        try:
            for name, info in CATALOG.items():
                app = service_app(name)
                if app is not None:
                    spec = await app.build(shared)
                else:
                    spec = ServiceSpec(name, [info.full_name],
                                       unimplemented_service(info.full_name, NOT_BUILT))
                server = GrpcServer(spec, interceptor, s.max_message_bytes)
                self._servers.append(server)
                port = await server.start(s.host, getattr(s.ports, name))
                for full in spec.full_names:
                    self.addresses[full] = f"{s.host}:{port}"
                self.services.append(ServiceStatus(name, info.full_name,
                                                   f"{s.host}:{port}", app is not None))
            await shared.bus.start()
            await self._start_gateway()
        except BaseException:
            await self.stop()
            raise
        return self

    async def _start_gateway(self) -> None:
        from gateway.app import create_app
        from gateway.realtime import CHANNEL_OPTIONS
        from gateway.server import GatewayServer

        s = self.settings
        # The edge holds no internal credential: internal RPCs are unreachable from it.
        self._edge_channels = Channels(self.addresses, "", s.default_deadline_s)
        image = pathlib.Path(__file__).resolve().parent.parent / "gen" / "zynk.binpb"
        assert self._shared is not None

        def realtime_channel_for(name: str) -> grpc.aio.Channel:
            # The realtime socket's own calls (a stream per open socket): lean, no interceptors.
            ch = grpc.aio.insecure_channel(self.addresses[name], options=CHANNEL_OPTIONS)
            self._realtime_channels[name] = ch
            return ch

        app = create_app(channel_for=self._edge_channels.get,
                         max_body_bytes=s.max_request_bytes,
                         default_timeout_s=s.default_deadline_s,
                         openapi=image if image.exists() else None,
                         verifier=self._shared.verifier, realtime=s.realtime,
                         realtime_channel_for=realtime_channel_for)
        # proxy_headers off: X-Forwarded-For from a client must not pick its rate-limit
        # bucket; behind a real proxy (Istio ingress) the proxy sets it.
        self._gateway = GatewayServer(app, host=s.host, port=s.ports.gateway,
                                      grace_s=s.shutdown_grace_s, proxy_headers=False,
                                      ws_max_size=s.realtime.max_frame_bytes)
        await self._gateway.start()
        self.gateway_url = self._gateway.url

    async def stop(self) -> None:
        grace = self.settings.shutdown_grace_s
        if self._gateway is not None:
            await self._gateway.stop()
            self._gateway = None
        await asyncio.gather(*(srv.stop(grace) for srv in self._servers),
                             return_exceptions=True)
        self._servers.clear()
        if self._shared is not None:
            await self._shared.channels.close()
            self._shared = None
        if self._backends is not None:
            await self._backends.close()
            self._backends = None
        if self._edge_channels is not None:
            await self._edge_channels.close()
            self._edge_channels = None
        for ch in self._realtime_channels.values():
            await ch.close()
        self._realtime_channels.clear()

    def banner(self) -> str:
        lines = [f"Zynk is up ({self.settings.mode} mode)",
                 f"  gateway       {self.gateway_url}   docs: {self.gateway_url}/docs"
                 f"   OpenAPI: {self.gateway_url}/openapi.json"]
        for st in self.services:
            state = "serving" if st.implemented else f"UNIMPLEMENTED ({NOT_BUILT})"
            lines.append(f"  {st.name:<13} grpc://{st.address:<16} {st.full_name}  [{state}]")
        lines.append(f"  data          {self.settings.data_dir.resolve()}  "
                     "(one SQLite file per service; bus, cache and rate limits in-process)")
        lines.append("Press Ctrl-C to stop.")
        return "\n".join(lines)
