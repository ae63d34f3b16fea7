"""The embedded mesh: the composition root for `zynk up`.

Every service gets its own grpc.aio server on its own port and the gateway talks to them
over real gRPC, exactly as in the distributed mode; only the process is one. The backends are
whatever Settings.backends chose (by default in-process: SQLite files under the data
directory, in-memory bus, cache and rate limits). The pieces are mesh/process.py's, shared
with the distributed processes (mesh/serve.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets

from mesh.health import HealthProbe
from mesh.process import (
    NOT_BUILT,
    RealtimeChannels,
    backend_lines,
    build_shared,
    build_spec,
    gateway_server,
)
from services.runtime import logging as zlog
from services.runtime.backends import ProcessBackends, build_backends
from services.runtime.catalog import CATALOG
from services.runtime.channels import Channels
from services.runtime.config import Settings
from services.runtime.interceptors import ServerInterceptor
from services.runtime.server import GrpcServer
from services.runtime.shared import Shared

log = zlog.get("mesh")

__all__ = ["EmbeddedMesh", "ServiceStatus", "NOT_BUILT"]


@dataclasses.dataclass
class ServiceStatus:
    name: str
    full_name: str
    address: str
    implemented: bool


class EmbeddedMesh:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.addresses: dict[str, str] = {}
        self.services: list[ServiceStatus] = []
        self.gateway_url = ""
        self.probe: HealthProbe | None = None
        self._servers: list[GrpcServer] = []
        self._gateway = None
        self._shared: Shared | None = None
        self._edge_channels: Channels | None = None
        self._backends: ProcessBackends | None = None
        self._realtime_channels = RealtimeChannels(self.addresses)

    async def start(self) -> EmbeddedMesh:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        # One process: the internal credential never leaves it, so a fresh one per start.
        internal_token = secrets.token_urlsafe(32)
        self._backends = backends = await build_backends(s)
        # Filled in as the servers bind (ports may be 0); channels read it by reference.
        channels = Channels(self.addresses, internal_token, s.default_deadline_s)
        self._shared = shared = build_shared(s, backends, channels, internal_token)
        interceptor = ServerInterceptor(shared.verifier, internal_token)
        self.probe = HealthProbe(backends.checks, s.mesh.probe_interval_s,
                                 s.mesh.probe_timeout_s)
        try:
            for name, info in CATALOG.items():
                spec, implemented = await build_spec(name, shared)
                server = GrpcServer(spec, interceptor, s.max_message_bytes)
                self._servers.append(server)
                port = await server.start(s.host, getattr(s.ports, name))
                self.probe.watch(server, spec.health_checks)
                for full in spec.full_names:
                    self.addresses[full] = f"{s.host}:{port}"
                self.services.append(ServiceStatus(name, info.full_name,
                                                   f"{s.host}:{port}", implemented))
            await shared.bus.start()
            self.probe.start()
            await self._start_gateway()
        except BaseException:
            await self.stop()
            raise
        return self

    async def _start_gateway(self) -> None:
        s = self.settings
        assert self._shared is not None
        # The edge holds no internal credential: internal RPCs are unreachable from it.
        self._edge_channels = Channels(self.addresses, "", s.default_deadline_s)
        self._gateway = gateway_server(s, self._edge_channels, verifier=self._shared.verifier,
                                       realtime_channels=self._realtime_channels)
        await self._gateway.start()
        self.gateway_url = self._gateway.url

    async def stop(self) -> None:
        grace = self.settings.shutdown_grace_s
        if self._gateway is not None:
            await self._gateway.stop()
            self._gateway = None
        if self.probe is not None:
            await self.probe.stop()
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
        await self._realtime_channels.close()

    def banner(self) -> str:
        lines = ["Zynk is up (embedded mode: every service in this process)",
                 f"  gateway       {self.gateway_url}   docs: {self.gateway_url}/docs"
                 f"   OpenAPI: {self.gateway_url}/openapi.json"]
        for st in self.services:
            state = "serving" if st.implemented else f"UNIMPLEMENTED ({NOT_BUILT})"
            lines.append(f"  {st.name:<13} grpc://{st.address:<16} {st.full_name}  [{state}]")
        lines.extend(backend_lines(self.settings))
        lines.append("Press Ctrl-C to stop.")
        return "\n".join(lines)
