"""The auth service's wiring, called by the process's composition root (mesh)."""

from __future__ import annotations

from services.auth.domain import AuthDomain
from services.auth.postgres import PostgresAuthStore
from services.auth.servicer import AuthServicer
from services.auth.signing import TokenIssuer, load_or_create_signing_key
from services.auth.sqlite import SqliteAuthStore
from services.runtime.config import Settings
from services.runtime.outbox import OutboxRelay
from services.runtime.server import ServiceSpec
from services.runtime.shared import Shared
from zynk.auth.v1 import auth_pb2_grpc

FULL_NAME = "zynk.auth.v1.AuthService"


async def open_store(settings: Settings) -> SqliteAuthStore | PostgresAuthStore:
    """The adapter the configuration chooses (backends.storage)."""
    if settings.backends.storage == "postgres":
        return await PostgresAuthStore.open(settings)
    return await SqliteAuthStore.open(settings.db_path("auth"))


async def build(shared: Shared) -> ServiceSpec:
    settings = shared.settings
    store = await open_store(settings)
    relay = OutboxRelay(store.db, shared.bus)
    try:
        key_path = (settings.auth.signing_key_path
                    or settings.data_dir / "keys" / "jwt-ed25519.pem")
        issuer = TokenIssuer(load_or_create_signing_key(key_path), settings.auth)
        # Verifiers in this process know the key without a round trip to GetJwks.
        shared.keys.set_keys(issuer.jwks())
        domain = AuthDomain(store, issuer, shared.limiter, shared.revocations, settings,
                            pubsub=shared.pubsub, cache=shared.cache)
        await domain.restore_revocations()
    except BaseException:
        await store.close()
        raise
    relay.start()
    servicer = AuthServicer(domain)

    def register(server) -> None:
        auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)

    checks = {"postgres": store.db.ping} if isinstance(store, PostgresAuthStore) else {}
    return ServiceSpec(name="auth", full_names=[FULL_NAME], register=register,
                       on_stop=[relay.stop, store.close], health_checks=checks)
