"""The group service's wiring, called by the process's composition root (mesh)."""

from __future__ import annotations

from services.group.domain import GroupDomain
from services.group.peers import AuthUserDirectory, MessagingSink
from services.group.postgres import PostgresGroupStore
from services.group.relay import MembershipRelay
from services.group.servicer import GroupServicer
from services.group.sqlite import SqliteGroupStore
from services.runtime.config import Settings
from services.runtime.outbox import OutboxRelay
from services.runtime.server import ServiceSpec
from services.runtime.shared import Shared
from zynk.group.v1 import group_pb2_grpc

FULL_NAME = "zynk.group.v1.GroupService"


async def open_store(settings: Settings) -> SqliteGroupStore | PostgresGroupStore:
    """The adapter the configuration chooses (backends.storage). On PostgreSQL any number of
    replicas may share the database (see postgres.py for how they take turns)."""
    if settings.backends.storage == "postgres":
        return await PostgresGroupStore.open(settings)
    return await SqliteGroupStore.open(settings.db_path("group"))


async def build(shared: Shared) -> ServiceSpec:
    settings = shared.settings
    store = await open_store(settings)
    events = OutboxRelay(store.db, shared.bus)
    relay = MembershipRelay(
        store, MessagingSink(shared.channels, settings.group.relay_call_timeout_s),
        settings.group)
    domain = GroupDomain(store, AuthUserDirectory(shared.channels), relay, settings.group,
                         cache=shared.cache)
    events.start()
    # Changes left pending by the previous run (messaging was down, or we crashed between a
    # commit and its relay) go out as soon as the loop starts.
    relay.start()
    servicer = GroupServicer(domain)

    def register(server) -> None:
        group_pb2_grpc.add_GroupServiceServicer_to_server(servicer, server)

    checks = {"postgres": store.db.ping} if isinstance(store, PostgresGroupStore) else {}
    return ServiceSpec(name="group", full_names=[FULL_NAME], register=register,
                       on_stop=[relay.stop, events.stop, store.close],
                       health_checks=checks)
