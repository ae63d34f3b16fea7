"""`zynk migrate`: bring every service's PostgreSQL schema up to date.

A service takes part by having services/<service>/migrations/postgres/; it gets the
runtime's migrations (outbox, processed_events) and its own, in schema `<service>` of its
database (postgres.database_urls.<service> or backends.database_url). Idempotent, and safe
to run from several places at once (see postgres.apply_migrations). The distributed runner
calls `migrate_on_start` before it opens any pool; each service also migrates itself on open
unless postgres.migrate_on_start is false."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from services.runtime.config import SERVICES, Settings
from services.runtime.postgres import (
    RUNTIME_MIGRATIONS,
    apply_migrations,
    database_url_for,
    service_migrations,
)


def migratable_services() -> list[str]:
    """The services that keep tables in PostgreSQL, in the catalogue's order."""
    return [s for s in SERVICES if service_migrations(s).is_dir()]


def migrate_services(settings: Settings, services: Sequence[str] | None = None, *,
                     on_done: Callable[[str, list[str]], None] | None = None,
                     ) -> dict[str, list[str]]:
    """Apply pending migrations, service by service; returns the ids applied to each (and
    reports each service to `on_done` as it finishes). Stops at the first failure (the
    failed migration rolls back: PostgreSQL DDL is transactional)."""
    known = migratable_services()
    chosen = list(services) if services else known
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise ValueError(f"no PostgreSQL migrations for: {', '.join(unknown)} "
                         f"(services that have them: {', '.join(known)})")
    pg = settings.postgres
    applied: dict[str, list[str]] = {}
    for service in chosen:
        applied[service] = apply_migrations(
            database_url_for(settings, service), service,
            [RUNTIME_MIGRATIONS, service_migrations(service)],
            lock_timeout_s=pg.migration_lock_timeout_s, connect_timeout_s=pg.connect_timeout_s)
        if on_done is not None:
            on_done(service, applied[service])
    return applied


async def migrate_on_start(settings: Settings,
                           services: Sequence[str] | None = None) -> dict[str, list[str]]:
    return await asyncio.to_thread(migrate_services, settings, services)
