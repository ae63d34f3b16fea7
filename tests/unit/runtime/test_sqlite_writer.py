"""SqliteDatabase.write / write_many / read: coalesced commits, failures isolated per call."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from services.runtime.sqlite import SqliteDatabase


@pytest.fixture
async def db(tmp_path):
    d = await SqliteDatabase.open(tmp_path / "w.sqlite3")
    await d.write(lambda c: c.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)"))
    yield d
    await d.close()


def insert(k: str, v: int = 0):
    def op(c: sqlite3.Connection) -> str:
        c.execute("INSERT INTO t VALUES (?, ?)", (k, v))
        return k
    return op


async def rows(db: SqliteDatabase) -> list[tuple]:
    return await db.read(lambda c: [tuple(r) for r in c.execute("SELECT k, v FROM t ORDER BY k")])


async def test_a_failing_call_rolls_back_alone(db):
    def half_then_fail(c):
        c.execute("INSERT INTO t VALUES ('partial', 1)")
        raise ValueError("nope")

    results = await asyncio.gather(db.write(insert("a")), db.write(half_then_fail),
                                   db.write(insert("b")), db.write(insert("a")),
                                   return_exceptions=True)
    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], ValueError)
    assert isinstance(results[3], sqlite3.IntegrityError)
    assert await rows(db) == [("a", 0), ("b", 0)]


async def test_concurrent_calls_share_commits(db):
    commits = 0

    def count():
        nonlocal commits
        commits += 1

    db.on_commit(count)
    await asyncio.gather(*[db.write(insert(f"k{i:03}")) for i in range(300)])
    assert len(await rows(db)) == 300
    assert commits < 300  # coalesced into fewer transactions


def add_many(c: sqlite3.Connection, items: list) -> list:
    c.executemany("INSERT INTO t VALUES (?, ?)", [(k, len(items)) for k in items])
    return [f"ok:{k}" for k in items]


async def test_write_many_groups_calls_and_isolates_a_bad_item(db):
    await db.write(insert("taken"))
    results = await asyncio.gather(*[db.write_many(add_many, k)
                                     for k in ["x1", "x2", "taken", "x3"]],
                                   return_exceptions=True)
    assert results[0] == "ok:x1" and results[3] == "ok:x3"
    assert isinstance(results[2], sqlite3.IntegrityError)
    # the group failed as a whole, so each item was retried alone (v = group size 1)
    assert await rows(db) == [("taken", 0), ("x1", 1), ("x2", 1), ("x3", 1)]
    good = await asyncio.gather(*[db.write_many(add_many, f"y{i}") for i in range(20)])
    assert good == [f"ok:y{i}" for i in range(20)]
    sizes = {v for k, v in await rows(db) if k.startswith("y")}
    assert max(sizes) > 1  # together, in fewer statements


async def test_reads_see_one_snapshot_and_committed_writes(db):
    await db.write(insert("a", 1))

    def two_reads(c):
        first = c.execute("SELECT count(*) FROM t").fetchone()[0]
        return first, c.execute("SELECT sum(v) FROM t").fetchone()[0]

    assert await db.read(two_reads) == (1, 1)


async def test_close_drains_queued_writes(tmp_path):
    path = tmp_path / "d.sqlite3"
    d = await SqliteDatabase.open(path)
    await d.write(lambda c: c.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)"))
    pending = [asyncio.ensure_future(d.write(insert(f"k{i}"))) for i in range(50)]
    await asyncio.sleep(0)
    await d.close()
    await asyncio.gather(*pending)
    d2 = await SqliteDatabase.open(path)
    try:
        assert len(await rows(d2)) == 50
        assert not (tmp_path / "d.sqlite3-wal").exists() or (
            tmp_path / "d.sqlite3-wal").stat().st_size < 1_000_000
    finally:
        await d2.close()


async def test_group_commit_linger_still_completes_every_call(tmp_path):
    d = await SqliteDatabase.open(tmp_path / "l.sqlite3")
    d.write_linger_s = 0.002
    try:
        await d.write(lambda c: c.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)"))
        for burst in range(3):
            await asyncio.gather(*[d.write(insert(f"{burst}-{i}")) for i in range(30)])
        assert len(await rows(d)) == 90
    finally:
        await d.close()
