"""The SQLite reader connection sees every transaction committed before the read started,
even while other tasks read at the same time (a cursor left open keeps its snapshot: a read
interleaved with it used to miss the caller's own commit)."""

from __future__ import annotations

import asyncio

from services.runtime.sqlite import SqliteDatabase


async def test_a_read_after_a_commit_sees_it_despite_concurrent_readers(tmp_path):
    db = await SqliteDatabase.open(tmp_path / "t.sqlite3")
    try:
        async with db.transaction() as tx:
            await tx.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            await tx.executemany("INSERT INTO t (id) VALUES (?)",
                                 [(i,) for i in range(1000, 1100)])
        stop = asyncio.Event()

        async def noise() -> None:
            while not stop.is_set():
                await db.fetchall("SELECT id FROM t WHERE id >= 1000")

        readers = [asyncio.create_task(noise()) for _ in range(3)]
        stale = 0
        for i in range(200):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO t (id) VALUES (?)", (i,))
            if await db.fetchone("SELECT id FROM t WHERE id = ?", (i,)) is None:
                stale += 1
            async with db.transaction() as tx:
                await tx.execute("DELETE FROM t WHERE id = ?", (i,))
            if await db.fetchone("SELECT id FROM t WHERE id = ?", (i,)) is not None:
                stale += 1
        stop.set()
        await asyncio.gather(*readers)
        assert stale == 0
    finally:
        await db.close()
