"""SQLite storage for the embedded mode: one database file per service, WAL journal,
versioned migrations applied with yoyo-migrations.

Writes are serialised through one connection and an asyncio lock, so a transaction is
never interleaved with another task's statements; reads use a second connection, which
WAL lets proceed beside a writer. `synchronous=NORMAL` under WAL keeps every committed
transaction across a process crash (kill -9); set ZYNK_SQLITE_SYNCHRONOUS=FULL to also
survive power loss at some cost in throughput."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import aiosqlite

RUNTIME_MIGRATIONS = pathlib.Path(__file__).parent / "migrations" / "sqlite"


def apply_migrations(path: pathlib.Path, directories: Iterable[pathlib.Path]) -> list[str]:
    """Apply pending migrations from `directories` (in order); returns the ids applied."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(f"sqlite:///{path}")
    try:
        migrations = read_migrations(*[str(d) for d in directories])
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
            return [m.id for m in pending]
    finally:
        backend.connection.close()


class SqliteDatabase:
    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        # One statement at a time on the reader: while a cursor is open its read snapshot
        # stays open, and a read interleaved with it would not see commits made since (a
        # stale read of one's own write).
        self._read_lock = asyncio.Lock()
        self._on_commit: list[Callable[[], None]] = []

    @classmethod
    async def open(
        cls, path: pathlib.Path, migrations: Sequence[pathlib.Path] = ()
    ) -> SqliteDatabase:
        path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(apply_migrations, path, [RUNTIME_MIGRATIONS, *migrations])
        db = cls(path)
        db._writer = await cls._connect(path)
        db._reader = await cls._connect(path)
        return db

    @staticmethod
    async def _connect(path: pathlib.Path) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        sync = os.environ.get("ZYNK_SQLITE_SYNCHRONOUS", "NORMAL").upper()
        if sync not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            sync = "NORMAL"
        for pragma in (
            "journal_mode=WAL",
            f"synchronous={sync}",
            "foreign_keys=ON",
            "busy_timeout=5000",
        ):
            await conn.execute(f"PRAGMA {pragma}")
        return conn

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` after every committed write transaction (e.g. wake the outbox)."""
        self._on_commit.append(callback)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception: never a partial write."""
        assert self._writer is not None, "database is closed"
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            else:
                await self._writer.execute("COMMIT")
        for cb in self._on_commit:
            cb()

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        assert self._reader is not None, "database is closed"
        async with self._read_lock, self._reader.execute(sql, params) as cur:
            return await cur.fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        assert self._reader is not None, "database is closed"
        async with self._read_lock, self._reader.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None
