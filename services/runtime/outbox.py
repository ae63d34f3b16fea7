"""Transactional outbox and idempotent consumption.

`add_event` writes an event row inside the caller's transaction; `OutboxRelay` publishes
rows to the bus after commit and deletes them only once the bus accepted them. A crash
between commit and publish therefore re-publishes on restart (at-least-once); consumers
use `mark_processed` in their own transaction to make redelivery harmless."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid

import aiosqlite
from google.protobuf.message import Message

from services.runtime import logging as zlog
from services.runtime.bus import Event, EventBus
from services.runtime.sqlite import SqliteDatabase

log = zlog.get("outbox")


_INSERT = ("INSERT INTO outbox (event_id, topic, key, type_name, payload, created_at)"
           " VALUES (?, ?, ?, ?, ?, ?)")


def _row(topic: str, key: str, payload: Message, event_id: str) -> tuple:
    return (event_id, topic, key, payload.DESCRIPTOR.full_name,
            payload.SerializeToString(deterministic=True), time.time())


async def add_event(
    tx: aiosqlite.Connection, topic: str, key: str, payload: Message, event_id: str | None = None
) -> str:
    event_id = event_id or str(uuid.uuid4())
    await tx.execute(_INSERT, _row(topic, key, payload, event_id))
    return event_id


def add_events_sync(conn: sqlite3.Connection,
                    events: list[tuple[str, str, Message, str]]) -> None:
    """`add_event` for code running inside `SqliteDatabase.write`: (topic, key, payload,
    event_id) rows, written in the caller's transaction."""
    if events:
        conn.executemany(_INSERT, [_row(t, k, p, e) for t, k, p, e in events])


async def mark_processed(tx: aiosqlite.Connection, consumer: str, event_id: str) -> bool:
    """Record that `consumer` handled `event_id`; False when it already had (skip the work)."""
    cur = await tx.execute(
        "INSERT OR IGNORE INTO processed_events (consumer, event_id, handled_at) VALUES (?, ?, ?)",
        (consumer, event_id, time.time()),
    )
    return cur.rowcount == 1


class OutboxRelay:
    def __init__(self, db: SqliteDatabase, bus: EventBus, batch: int = 200,
                 poll_s: float = 1.0, min_interval_s: float = 0.0) -> None:
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
            try:
                while await self.relay_once():
                    pass
            except Exception:
                log.exception("outbox relay failed; will retry")
            if self._stopping:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), self._poll_s)
            except TimeoutError:
                pass
            if self._min_interval_s and not self._stopping:
                await asyncio.sleep(self._min_interval_s)

    async def relay_once(self) -> int:
        async with self._lock:  # one relay at a time, or rows would be published twice
            batch = self._batch
            rows = await self._db.read(lambda c: c.execute(
                "SELECT seq, event_id, topic, key, type_name, payload FROM outbox"
                " ORDER BY seq LIMIT ?", (batch,)).fetchall())
            for r in rows:
                await self._bus.publish(Event(r["topic"], r["key"], r["event_id"],
                                              r["type_name"], bytes(r["payload"])))
            if rows:
                last = rows[-1]["seq"]
                # Through the coalescing writer: a service whose writes go through
                # db.write() would otherwise contend with the relay for the write lock.
                await self._db.write(
                    lambda c: c.execute("DELETE FROM outbox WHERE seq <= ?", (last,)))
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
