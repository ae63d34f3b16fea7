"""The pieces every kind of process is composed from, shared by the embedded mesh (every
service in one process) and the distributed processes (`zynk serve <service>|gateway`):
Shared from the process's backends, a token verifier whose keys come from the auth service
over gRPC, a service's spec (its app.py, or an honest UNIMPLEMENTED), the gateway app, a
listening socket several processes can share, the internal credential, and what a banner
says about the backends in use."""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

import grpc
from google.protobuf import json_format

from services.runtime.urls import redact_url
from services.runtime.backends import ProcessBackends
from services.runtime.catalog import CATALOG
from services.runtime.channels import Channels
from services.runtime.config import Settings
from services.runtime.server import ServiceSpec, unimplemented_service
from services.runtime.shared import Shared
from services.runtime.tokens import JwksKeySource, TokenVerifier

if TYPE_CHECKING:
    from gateway.server import GatewayServer

NOT_BUILT = "it arrives with a later issue"
GATEWAY = "gateway"
# A credential shorter than this is refused: it is the only thing between a caller on the
# network and the mesh's internal methods.
MIN_INTERNAL_TOKEN_CHARS = 32
_OPENAPI_IMAGE = pathlib.Path(__file__).resolve().parent.parent / "gen" / "zynk.binpb"


class ConfigError(Exception):
    """The configuration cannot work; the process refuses to start and says why."""


# -- services ----------------------------------------------------------------------------


def service_app(name: str):
    """The service's wiring module (services/<name>/app.py), or None if not built yet."""
    return importlib.import_module(f"services.{name}.app") if is_built(name) else None


def is_built(name: str) -> bool:
    """Whether services/<name>/app.py exists (without importing the service)."""
    return (importlib.util.find_spec(f"services.{name}") is not None
            and importlib.util.find_spec(f"services.{name}.app") is not None)


def service_addresses(settings: Settings) -> dict[str, str]:
    """gRPC service full name -> host:port, from Settings.addresses / ports."""
    return {info.full_name: settings.address_of(name) for name, info in CATALOG.items()}


def build_verifier(settings: Settings, backends: ProcessBackends,
                   channels: Channels) -> tuple[JwksKeySource, TokenVerifier]:
    """Tokens are verified locally with the auth service's public keys, fetched over gRPC
    (through `channels`) when a kid is unknown; the auth service, when hosted in the same
    process, hands them over at build time instead."""
    auth = CATALOG["auth"]

    async def fetch_jwks():
        stub = auth.pb2_grpc.AuthServiceStub(channels.get(auth.full_name))
        resp = await stub.GetJwks(auth.pb2.GetJwksRequest(), timeout=5)
        return [json_format.MessageToDict(k, preserving_proto_field_name=True)
                for k in resp.keys]

    keys = JwksKeySource(fetch_jwks)
    return keys, TokenVerifier(keys, settings.auth.issuer, settings.auth.audience,
                               backends.revocations)


def build_shared(settings: Settings, backends: ProcessBackends, channels: Channels,
                 internal_token: str) -> Shared:
    """What every service of this process shares."""
    keys, verifier = build_verifier(settings, backends, channels)
    return Shared(settings=settings, bus=backends.bus, limiter=backends.limiter,
                  revocations=backends.revocations, channels=channels, keys=keys,
                  verifier=verifier, internal_token=internal_token, pubsub=backends.pubsub,
                  cache=backends.cache)


async def build_spec(name: str, shared: Shared) -> tuple[ServiceSpec, bool]:
    """The service's spec from its app.py, or every method UNIMPLEMENTED if it is not built
    yet; and whether it is built."""
    app = service_app(name)
    if app is not None:
        return await app.build(shared), True
    full_name = CATALOG[name].full_name
    return ServiceSpec(name, [full_name], unimplemented_service(full_name, NOT_BUILT)), False


# -- the gateway -------------------------------------------------------------------------


class RealtimeChannels:
    """The realtime sockets' own channels (the shared Relay stream, watches, typing,
    heartbeats): lean, no interceptors (no credential), one per service, made on first use."""

    def __init__(self, addresses: Mapping[str, str]) -> None:
        self._addresses = addresses
        self._channels: dict[str, grpc.aio.Channel] = {}

    def get(self, full_name: str) -> grpc.aio.Channel:
        from gateway.realtime import CHANNEL_OPTIONS

        ch = self._channels.get(full_name)
        if ch is None:
            ch = grpc.aio.insecure_channel(self._addresses[full_name], options=CHANNEL_OPTIONS)
            self._channels[full_name] = ch
        return ch

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()


def gateway_server(settings: Settings, channels: Channels, *,
                   verifier: TokenVerifier | None = None,
                   realtime_channels: RealtimeChannels | None = None,
                   readiness=None, sock: socket.socket | None = None) -> GatewayServer:
    """The REST edge over `channels` (which must carry no internal credential: internal RPCs
    stay unreachable from the edge); with a `verifier`, the realtime WebSocket too."""
    from gateway.app import create_app
    from gateway.server import GatewayServer

    app = create_app(channel_for=channels.get, max_body_bytes=settings.max_request_bytes,
                     default_timeout_s=settings.default_deadline_s,
                     openapi=_OPENAPI_IMAGE if _OPENAPI_IMAGE.exists() else None,
                     readiness=readiness, verifier=verifier, realtime=settings.realtime,
                     realtime_channel_for=realtime_channels.get if realtime_channels else None)
    # proxy_headers off: X-Forwarded-For from a client must not pick its rate-limit bucket;
    # behind a real proxy (Istio ingress) the proxy sets it.
    return GatewayServer(app, host=settings.host, port=settings.ports.gateway,
                         grace_s=settings.shutdown_grace_s, proxy_headers=False, sock=sock,
                         ws_max_size=settings.realtime.max_frame_bytes)


def reuseport_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket with SO_REUSEPORT: every process of one kind (gateway replicas)
    binds its own on the same port and the kernel spreads new connections across them.
    Linux only shares a port between sockets of the same user."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


# -- the internal credential -------------------------------------------------------------


def internal_token(settings: Settings) -> str:
    """The mesh's internal credential from configuration (distributed mode):
    mesh.internal_token (ZYNK_MESH__INTERNAL_TOKEN), else the file named by
    mesh.internal_token_file. There is no default: without one, refuse to start."""
    m = settings.mesh
    if m.internal_token is not None:
        token, source = m.internal_token.get_secret_value().strip(), "mesh.internal_token"
    elif m.internal_token_file is not None:
        try:
            token = m.internal_token_file.read_text().strip()
        except OSError as e:
            raise ConfigError(f"cannot read mesh.internal_token_file "
                              f"{m.internal_token_file}: {e.strerror}") from None
        source = str(m.internal_token_file)
    else:
        raise ConfigError(
            "distributed mode needs the mesh's internal credential: set "
            "ZYNK_MESH__INTERNAL_TOKEN or ZYNK_MESH__INTERNAL_TOKEN_FILE (a secret shared by "
            "every service process, e.g. `python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`); `zynk up --distributed` makes one itself")
    if len(token) < MIN_INTERNAL_TOKEN_CHARS:
        raise ConfigError(f"the internal credential from {source} is too short: use at least "
                          f"{MIN_INTERNAL_TOKEN_CHARS} random characters")
    return token


# -- what a process may run on ------------------------------------------------------------


def check_distributed_backends(settings: Settings) -> None:
    """Refuse backends that cannot be shared between processes: an in-process bus would
    drop every event meant for another process, and an in-process revocation list would let
    a revoked device's tokens through every other process."""
    b = settings.backends
    problems = []
    if b.bus != "kafka":
        problems.append("backends.bus must be kafka (ZYNK_BACKENDS__BUS=kafka, "
                        "ZYNK_BACKENDS__KAFKA_BOOTSTRAP=host:port)")
    if b.cache != "redis":
        problems.append("backends.cache must be redis (ZYNK_BACKENDS__CACHE=redis, "
                        "ZYNK_BACKENDS__REDIS_URL=redis://host:port/0)")
    # Which database each service uses is the PostgreSQL module's business (it says so
    # when a URL is missing); here only whether this build has it at all.
    if b.storage == "postgres" and importlib.util.find_spec("services.runtime.postgres") is None:
        problems.append("backends.storage=postgres, but this build has no PostgreSQL "
                        "storage (services/runtime/postgres.py)")
    if problems:
        raise ConfigError("distributed mode: " + "; ".join(problems))


# -- banners ------------------------------------------------------------------------------


def backend_lines(settings: Settings) -> list[str]:
    """What the backends in use are, one line each, for the banners."""
    b = settings.backends
    data = settings.data_dir.resolve()
    if b.storage == "postgres":
        where = redact_url(b.database_url) if b.database_url else "(a database per service)"
        storage = f"PostgreSQL {where} (one schema per service)"
    else:
        storage = f"SQLite under {data} (one file per service, this machine only)"
    if b.bus == "kafka":
        bus = f"Kafka {b.kafka_bootstrap}" + (
            f" (topic prefix {b.topic_prefix!r})" if b.topic_prefix else "")
    else:
        bus = "in-process (events stay in this process)"
    if b.cache == "redis":
        cache = f"Redis {redact_url(b.redis_url)} (key prefix {b.key_prefix!r})"
    else:
        cache = "in-process"
    return [f"  storage       {storage}",
            f"  bus           {bus}",
            f"  cache         {cache}  (also rate limits, revocations, pub/sub)",
            f"  data          {data}"]
