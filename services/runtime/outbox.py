"""Transactional outbox and idempotent consumption, on SQLite and on PostgreSQL.

`add_event` writes an event row inside the caller's transaction; `OutboxRelay` publishes
rows to the bus after commit and deletes them only once the bus accepted them. A crash
between commit and publish therefore re-publishes on restart (at-least-once); consumers
use `mark_processed` in their own transaction to make redelivery harmless.

`tx` is what the database's `transaction()` yields: an aiosqlite connection (SQLite) or an
asyncpg connection (PostgreSQL). On PostgreSQL several replicas of a service share one
outbox; they take turns relaying (a transaction-scoped advisory lock per schema elects one
relay at a time, so events keep their order) and each batch is also locked
`FOR UPDATE SKIP LOCKED`, so no row is ever handed to two relays at once."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Sequence

import aiosqlite
from google.protobuf.message import Message

from services.runtime import logging as zlog
from services.runtime.bus import Event, EventBus
from services.runtime.errors import Unavailable
from services.runtime.postgres import LOCK_OUTBOX, PostgresDatabase
from services.runtime.sqlite import SqliteDatabase

log = zlog.get("outbox")

# While another replica relays, look again this soon: it may have finished its last batch
# just before our commit landed.
BUSY_RETRY_S = 0.05


async def add_event(tx, topic: str, key: str, payload: Message,
                    event_id: str | None = None) -> str:
    event_id = event_id or str(uuid.uuid4())
    await add_events(tx, [(topic, key, payload, event_id)])
    return event_id


async def add_events(tx, events: Sequence[tuple[str, str, Message, str]]) -> None:
    """Several `add_event`s, (topic, key, payload, event_id) each, in the caller's
    transaction and in the given order; on PostgreSQL one multi-row statement."""
    if not events:
        return
    if isinstance(tx, aiosqlite.Connection):
        await tx.executemany(_INSERT, [_row(t, k, p, e) for t, k, p, e in events])
        return
    await tx.execute(pg_insert_events(1), *pg_event_arrays(events))


def pg_insert_events(first: int) -> str:
    """The PostgreSQL INSERT of events given as the five arrays of `pg_event_arrays`, bound
    from parameter $`first` on; usable as a WITH sub-statement, so an adapter can write its
    events in the same statement (one round trip) as its own rows."""
    e, t, k, n, p = (f"${first + i}" for i in range(5))
    # ORDER BY the input position: identities (seq, the relay's order) follow it.
    return ("INSERT INTO outbox (event_id, topic, key, type_name, payload)"
            f" SELECT e, t, k, n, p FROM unnest({e}::text[], {t}::text[], {k}::text[],"
            f" {n}::text[], {p}::bytea[]) WITH ORDINALITY AS x(e, t, k, n, p, i) ORDER BY i")


def pg_event_arrays(events: Sequence[tuple[str, str, Message, str]]) -> list[list]:
    """(topic, key, payload, event_id) events as the arrays `pg_insert_events` binds."""
    return [[e for _, _, _, e in events], [t for t, _, _, _ in events],
            [k for _, k, _, _ in events], [p.DESCRIPTOR.full_name for _, _, p, _ in events],
            [p.SerializeToString(deterministic=True) for _, _, p, _ in events]]


_INSERT = ("INSERT INTO outbox (event_id, topic, key, type_name, payload, created_at)"
           " VALUES (?, ?, ?, ?, ?, ?)")


def _row(topic: str, key: str, payload: Message, event_id: str) -> tuple:
    return (event_id, topic, key, payload.DESCRIPTOR.full_name,
            payload.SerializeToString(deterministic=True), time.time())


def add_events_sync(conn: sqlite3.Connection,
                    events: list[tuple[str, str, Message, str]]) -> None:
    """`add_event` for code running inside `SqliteDatabase.write`: (topic, key, payload,
    event_id) rows, written in the caller's transaction."""
    if events:
        conn.executemany(_INSERT, [_row(t, k, p, e) for t, k, p, e in events])


async def mark_processed(tx, consumer: str, event_id: str) -> bool:
    """Record that `consumer` handled `event_id`; False when it already had (skip the work)."""
    if isinstance(tx, aiosqlite.Connection):
        cur = await tx.execute(
            "INSERT OR IGNORE INTO processed_events (consumer, event_id, handled_at)"
            " VALUES (?, ?, ?)", (consumer, event_id, time.time()))
        return cur.rowcount == 1
    status = await tx.execute(
        "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING", consumer, event_id)
    return status == "INSERT 0 1"


def _event(r) -> Event:
    return Event(r["topic"], r["key"], r["event_id"], r["type_name"], bytes(r["payload"]))


class OutboxRelay:
    def __init__(self, db: SqliteDatabase | PostgresDatabase, bus: EventBus,
                 batch: int = 200, poll_s: float = 1.0, min_interval_s: float = 0.0) -> None:
        """`min_interval_s`: wait at least this long between passes, so a service that commits
        thousands of times a second relays its events in batches instead of once per commit
        (each pass costs a read and a write of its own)."""
        self._db = db
        self._bus = bus
        self._batch = batch
        self._poll_s = poll_s
        self._min_interval_s = min_interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._stopping = False
        db.on_commit(self._wake.set)

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            # Clear before reading so a commit that lands while we relay wakes us again.
            self._wake.clear()
            delay = self._poll_s
            try:
                while n := await self._relay_batch():
                    pass
                if n is None:  # another replica is relaying
                    delay = min(delay, BUSY_RETRY_S)
            except Unavailable as e:  # the database or the broker is away for a moment
                log.warning("outbox relay paused; will retry", reason=e.reason)
            except Exception:
                log.exception("outbox relay failed; will retry")
            if self._stopping:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass
            if self._min_interval_s and not self._stopping:
                await asyncio.sleep(self._min_interval_s)

    async def relay_once(self) -> int:
        """Publish one batch; the number of events published (0 when there was nothing to
        do or another replica is relaying)."""
        return await self._relay_batch() or 0

    async def _relay_batch(self) -> int | None:
        async with self._lock:  # one relay per process, or rows would be published twice
            if isinstance(self._db, PostgresDatabase):
                return await self._relay_postgres(self._db)
            return await self._relay_sqlite(self._db)

    async def _relay_sqlite(self, db: SqliteDatabase) -> int:
        batch = self._batch
        rows = await db.read(lambda c: c.execute(
            "SELECT seq, event_id, topic, key, type_name, payload FROM outbox"
            " ORDER BY seq LIMIT ?", (batch,)).fetchall())
        await self._bus.publish_many([_event(r) for r in rows])
        if rows:
            last = rows[-1]["seq"]
            # Through the coalescing writer: a service whose writes go through db.write()
            # would otherwise contend with the relay for the write lock.
            await db.write(lambda c: c.execute("DELETE FROM outbox WHERE seq <= ?", (last,)))
        return len(rows)

    async def _relay_postgres(self, db: PostgresDatabase) -> int | None:
        # The rows stay locked until the batch is published and deleted in the same
        # transaction; if publishing fails, the rollback leaves them for the next try.
        # notify=False: our own commit must not wake us (we would spin).
        async with db.transaction(notify=False) as tx:
            if not await tx.fetchval("SELECT pg_try_advisory_xact_lock($1, hashtext($2))",
                                     LOCK_OUTBOX, db.schema):
                return None
            rows = await tx.fetch(
                "SELECT seq, event_id, topic, key, type_name, payload FROM outbox"
                " ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED", self._batch)
            # One batch, one round trip to the broker; if it fails nothing is deleted and
            # the whole batch is published again (duplicates are harmless, losses are not).
            await self._bus.publish_many([_event(r) for r in rows])
            if rows:
                # By seq, not `seq <= last`: a row with a lower seq whose transaction had not
                # committed when we read is still unpublished.
                await tx.execute("DELETE FROM outbox WHERE seq = ANY($1::bigint[])",
                                 [r["seq"] for r in rows])
            return len(rows)

    async def stop(self) -> None:
        """Finish the batch in flight and publish what is left, so a clean shutdown leaves
        nothing behind (a crash leaves rows for the next start instead)."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(self._task, 10)
        except Exception:
            log.exception("outbox drain on stop failed; rows stay for the next start")
        self._task = None
