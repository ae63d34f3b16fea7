"""`zynk serve <service>|gateway`: the composition root of one distributed process.

A service process builds its backends from Settings (PostgreSQL or SQLite, Redis, Kafka),
finds the other services at Settings.addresses / ports, presents the mesh's internal
credential from configuration (refusing to start without one), serves its service on its
port with gRPC health driven by a backend probe (mesh/health.py), and stops gracefully on
SIGTERM/SIGINT: NOT_SERVING first, in-flight calls drained, backends closed.

A gateway process holds no internal credential and no backend: it serves the REST edge on a
socket bound with SO_REUSEPORT, so several gateway processes share one port.

Started by the supervisor (`zynk up --distributed`, mesh/supervisor.py), a process also gets
`--notify-fd`: one end of a socket pair on which it writes `READY <port>` once serving, and
whose end-of-file means the supervisor is gone — the process then stops itself, so a killed
supervisor never leaves orphans behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys

from mesh.health import HealthProbe
from mesh.process import (
    GATEWAY,
    ConfigError,
    RealtimeChannels,
    build_shared,
    build_verifier,
    build_spec,
    check_distributed_backends,
    gateway_server,
    internal_token,
    reuseport_socket,
    service_addresses,
)
from services.runtime import logging as zlog
from services.runtime.backends import ProcessBackends, build_backends
from services.runtime.catalog import CATALOG
from services.runtime.channels import Channels
from services.runtime.config import Settings
from services.runtime.interceptors import ServerInterceptor
from services.runtime.server import GrpcServer

log = zlog.get("serve")


class ServiceProcess:
    """One service in this process."""

    def __init__(self, settings: Settings, name: str, token: str) -> None:
        if name not in CATALOG:
            raise ConfigError(f"no service named {name!r}")
        self.settings = settings
        self.name = name
        self.port: int | None = None
        self.implemented = False
        self.server: GrpcServer | None = None
        self.probe: HealthProbe | None = None
        self._token = token
        self._backends: ProcessBackends | None = None
        self._channels: Channels | None = None

    async def start(self) -> int:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._backends = backends = await build_backends(s, client_id=f"zynk-{self.name}")
            self._channels = Channels(service_addresses(s), self._token, s.default_deadline_s)
            shared = build_shared(s, backends, self._channels, self._token)
            spec, self.implemented = await build_spec(self.name, shared)
            self.server = GrpcServer(spec, ServerInterceptor(shared.verifier, self._token),
                                     s.max_message_bytes)
            self.port = await self.server.start(s.host, getattr(s.ports, self.name))
            await shared.bus.start()
            self.probe = HealthProbe(backends.checks, s.mesh.probe_interval_s,
                                     s.mesh.probe_timeout_s)
            self.probe.watch(self.server, spec.health_checks)
            self.probe.start()
        except BaseException:
            await self.stop()
            raise
        return self.port

    async def stop(self) -> None:
        if self.probe is not None:
            await self.probe.stop()
            self.probe = None
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop(self.settings.shutdown_grace_s)
        if self._channels is not None:
            await self._channels.close()
            self._channels = None
        if self._backends is not None:
            await self._backends.close()
            self._backends = None


class GatewayProcess:
    """The REST edge and the realtime WebSocket in this process, on a port it may share with
    other gateway processes. The socket authenticates devices here, so the process has the
    revocation list (Redis) and the auth service's keys; it holds no internal credential."""

    name = GATEWAY

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port: int | None = None
        self.server = None
        self._channels: Channels | None = None
        self._realtime: RealtimeChannels | None = None
        self._backends: ProcessBackends | None = None

    async def start(self) -> int:
        s = self.settings
        addresses = service_addresses(s)
        # The edge holds no internal credential: internal RPCs are unreachable from it.
        self._channels = Channels(addresses, "", s.default_deadline_s)
        self._realtime = RealtimeChannels(addresses)
        sock = None
        try:
            self._backends = await build_backends(s, client_id="zynk-gateway")
            _, verifier = build_verifier(s, self._backends, self._channels)
            # The gateway publishes and consumes nothing: only Redis matters to it.
            checks = {n: c for n, c in self._backends.checks.items() if n != "kafka"}
            timeout = s.mesh.probe_timeout_s

            async def readiness() -> dict[str, bool]:
                async def ok(check) -> bool:
                    try:
                        await asyncio.wait_for(check(), timeout)
                    except Exception:  # noqa: BLE001 -- unreachable is "not ready"
                        return False
                    return True

                names = list(checks)
                results = await asyncio.gather(*(ok(checks[n]) for n in names))
                return dict(zip(names, results, strict=True))

            sock = reuseport_socket(s.host, s.ports.gateway)
            self.server = gateway_server(s, self._channels, verifier=verifier,
                                         realtime_channels=self._realtime,
                                         readiness=readiness if checks else None, sock=sock)
            await self.server.start()
        except BaseException:
            if sock is not None:
                sock.close()
            await self.stop()
            raise
        self.port = self.server.port
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop()
        for closer in (self._channels, self._realtime, self._backends):
            if closer is not None:
                await closer.close()
        self._channels = self._realtime = self._backends = None


def make_process(settings: Settings, target: str) -> ServiceProcess | GatewayProcess:
    """Validate the configuration for `target` and build (not start) its process."""
    if target != GATEWAY and target not in CATALOG:
        raise ConfigError(f"no service named {target!r}; choose one of: "
                          f"{', '.join([*CATALOG, GATEWAY])}")
    check_distributed_backends(settings)
    if target == GATEWAY:
        return GatewayProcess(settings)
    return ServiceProcess(settings, target, internal_token(settings))


async def run(settings: Settings, target: str, notify_fd: int | None = None) -> int:
    """Serve `target` until SIGTERM/SIGINT (or the supervisor's end of `notify_fd` closes);
    returns the exit status."""
    settings.mode = "distributed"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    notify = None
    if notify_fd is not None:
        notify = socket.socket(fileno=notify_fd)
    try:
        proc = make_process(settings, target)
        port = await proc.start()
    except ConfigError as e:
        print(f"zynk serve {target}: {e}", file=sys.stderr, flush=True)
        return 2
    except Exception as e:  # noqa: BLE001 -- any start failure: say what, exit non-zero
        print(f"zynk serve {target}: cannot start: {type(e).__name__}: {e}", file=sys.stderr,
              flush=True)
        return 1
    log.info("serving", target=target, address=f"{settings.host}:{port}",
             implemented=getattr(proc, "implemented", True))
    watcher = None
    if notify is not None:
        watcher = asyncio.create_task(_tell_supervisor(notify, port, stop))
    await stop.wait()
    log.info("stopping", target=target)
    await proc.stop()
    if watcher is not None:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    return 0


async def _tell_supervisor(sock: socket.socket, port: int, stop: asyncio.Event) -> None:
    """Write READY, then wait for the supervisor's end to close (it died or let go)."""
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(f"READY {port}\n".encode())
        await writer.drain()
        while await reader.read(1024):
            pass
    except OSError:
        pass
    finally:
        writer.close()
    log.warning("supervisor gone: stopping", pid=os.getpid())
    stop.set()
