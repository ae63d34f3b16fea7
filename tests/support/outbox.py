"""What a store has put in its transactional outbox (services/runtime/outbox.py), in commit
order, as (event id, topic, key, type name): for store contract suites to assert on."""

from __future__ import annotations

from services.runtime.postgres import PostgresDatabase
from services.runtime.sqlite import SqliteDatabase

ROWS = "SELECT event_id, topic, key, type_name FROM outbox ORDER BY seq"


async def sqlite_outbox(db: SqliteDatabase) -> list[tuple[str, ...]]:
    return [tuple(r) for r in await db.fetchall(ROWS)]


async def postgres_outbox(db: PostgresDatabase) -> list[tuple[str, ...]]:
    return [tuple(r) for r in await db.fetch(ROWS)]
