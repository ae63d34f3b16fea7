"""SQLite storage for the embedded mode: one database file per service, WAL journal,
versioned migrations applied with yoyo-migrations.

Writes are serialised through one connection and an asyncio lock, so a transaction is
never interleaved with another task's statements; reads use a second connection, which
WAL lets proceed beside a writer.

Hot paths use `write(fn)` / `read(fn)` instead: a synchronous function run against a plain
sqlite3 connection in one thread hop. Concurrent `write` calls are coalesced by a single
writer thread into one transaction (each call in its own SAVEPOINT, so one failing call
rolls back alone), which turns many small commits into one; aiosqlite would cost a hop per
statement and a commit per call. `synchronous=NORMAL` under WAL keeps every committed
transaction across a process crash (kill -9); set ZYNK_SQLITE_SYNCHRONOUS=FULL to also
survive power loss at some cost in throughput."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import pathlib
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, TypeVar

import aiosqlite

RUNTIME_MIGRATIONS = pathlib.Path(__file__).parent / "migrations" / "sqlite"
T = TypeVar("T")


def _synchronous() -> str:
    sync = os.environ.get("ZYNK_SQLITE_SYNCHRONOUS", "NORMAL").upper()
    return sync if sync in {"OFF", "NORMAL", "FULL", "EXTRA"} else "NORMAL"


def _pragmas() -> tuple[str, ...]:
    return ("journal_mode=WAL", f"synchronous={_synchronous()}", "foreign_keys=ON",
            "busy_timeout=5000")


def connect_sync(path: pathlib.Path) -> sqlite3.Connection:
    """A plain sqlite3 connection with the same settings as the async ones, in autocommit
    mode (transactions are explicit) and usable from the thread that runs it."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    for pragma in _pragmas():
        conn.execute(f"PRAGMA {pragma}")
    return conn


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
        self._batch: BatchWriter | None = None
        self._reads: ReadPool | None = None
        # Group commit: under sustained load the writer waits this long for more calls
        # before it starts a batch (fewer, bigger commits; each commit writes every dirty
        # page to the WAL). 0: never wait.
        self.write_linger_s = 0.0

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
        for pragma in _pragmas():
            await conn.execute(f"PRAGMA {pragma}")
        return conn

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` after every committed write transaction (e.g. wake the outbox)."""
        self._on_commit.append(callback)

    def _committed(self) -> None:
        for cb in self._on_commit:
            cb()

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` inside a write transaction and return its result once committed.

        Calls made while the writer is busy are coalesced: the writer thread runs each in its
        own SAVEPOINT inside one BEGIN IMMEDIATE ... COMMIT, so an exception from `fn` rolls
        back that call alone and is raised to its caller, while the others commit. `fn` runs
        on the writer thread: it must be quick, do no I/O besides the connection, and touch
        no event-loop state. If the commit itself fails, every call of the batch gets the
        error and nothing of the batch is kept."""
        if self._batch is None:
            assert self._reader is not None, "database is closed"
            self._batch = BatchWriter(self.path, self._committed, linger_s=self.write_linger_s)
        return await self._batch.submit(fn)

    async def write_many(self, many: Many, item: Any) -> Any:
        """Like `write`, for operations that are much cheaper together: concurrent calls
        naming the same `many` function are handed to it as one list, `many(conn, items)`,
        which returns one result per item (in order). If it raises, each item is retried
        alone as `many(conn, [item])` in its own SAVEPOINT, so a bad item fails alone."""
        if self._batch is None:
            assert self._reader is not None, "database is closed"
            self._batch = BatchWriter(self.path, self._committed, linger_s=self.write_linger_s)
        return await self._batch.submit_many(many, item)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` on a reader thread, in one read transaction (a consistent WAL
        snapshot across its statements), in a single thread hop."""
        if self._reads is None:
            assert self._reader is not None, "database is closed"
            self._reads = ReadPool(self.path)
        return await self._reads.run(fn)

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
        if self._batch is not None:
            await self._batch.close()  # drains the writes already queued
            self._batch = None
        if self._reads is not None:
            await asyncio.to_thread(self._reads.close)
            self._reads = None
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None


_STOP = object()
Many = Callable[[sqlite3.Connection, list], list]


class _Op:
    __slots__ = ("fn", "many", "item", "fut", "loop")

    def __init__(self, fn, many, item, fut, loop) -> None:
        self.fn, self.many, self.item, self.fut, self.loop = fn, many, item, fut, loop


class BatchWriter:
    """One thread with its own connection that commits queued write calls in batches.

    Each caller awaits its own future; results are handed back to the event loop with one
    call_soon_threadsafe per batch, so a batch of N calls costs one wake-up, not N.

    Why a batch runs whole in this thread: sqlite3 releases the GIL around every statement,
    so each statement is a GIL hand-off with the event loop. Fewer statements per call is
    what makes a busy process fast; `submit_many` lets an adapter turn N similar calls into a
    few multi-row statements."""

    def __init__(self, path: pathlib.Path, on_commit: Callable[[], None],
                 max_batch: int = 512, checkpoint_interval_s: float = 0.25,
                 linger_s: float = 0.0) -> None:
        self._path = path
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        # Checkpoints (copying the WAL back into the database, with an fsync) run on their
        # own thread and connection instead of inside whichever commit crosses the
        # auto-checkpoint size, so the writer never stalls on them. PASSIVE: never blocks
        # the writer or readers.
        self._checkpoint_due = threading.Event()
        self._stopped = threading.Event()
        self._checkpoint_interval_s = checkpoint_interval_s
        self._checkpointer = threading.Thread(
            target=self._checkpoints, name=f"sqlite-checkpoint:{path.name}", daemon=True)
        self._thread = threading.Thread(target=self._run, name=f"sqlite-writer:{path.name}",
                                        daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        self._checkpointer.start()

    async def submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._put(fn, None, None)

    async def submit_many(self, many: Many, item: Any) -> Any:
        return await self._put(None, many, item)

    async def _put(self, fn, many, item):
        if self._closed:
            raise RuntimeError("database is closed")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.put(_Op(fn, many, item, fut, loop))
        return await fut

    async def close(self) -> None:
        self._closed = True
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._stopped.set()
        self._checkpoint_due.set()
        await asyncio.to_thread(self._checkpointer.join)

    def _checkpoints(self) -> None:
        conn = connect_sync(self._path)
        try:
            while not self._stopped.is_set():
                self._checkpoint_due.wait()
                self._checkpoint_due.clear()
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self._stopped.wait(self._checkpoint_interval_s)
            with contextlib.suppress(sqlite3.Error):  # closing: leave a small WAL behind
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def _run(self) -> None:
        try:
            conn = connect_sync(self._path)
            conn.execute("PRAGMA wal_autocheckpoint=0")
        except BaseException as e:  # surfaced by __init__
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            stopping = False
            busy_until = 0.0
            while not stopping:
                item = self._queue.get()
                if item is _STOP:
                    break
                if self._linger_s and time.monotonic() < busy_until:
                    time.sleep(self._linger_s)  # sustained load: let the batch fill up
                busy_until = time.monotonic() + 10 * self._linger_s
                batch = [item]
                while len(batch) < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                        break
                    batch.append(item)
                self._deliver(batch, self._execute(conn, batch))
                self._checkpoint_due.set()
        finally:
            conn.close()

    @staticmethod
    def _one(conn: sqlite3.Connection, call: Callable[[], Any]) -> tuple[bool, Any]:
        conn.execute("SAVEPOINT op")
        try:
            result = (True, call())
        except Exception as e:
            # A failed statement normally leaves the transaction open; if SQLite rolled it
            # back entirely (I/O error, full disk), ROLLBACK TO raises and the whole batch
            # fails in _execute.
            conn.execute("ROLLBACK TO op")
            result = (False, e)
        conn.execute("RELEASE op")
        return result

    @classmethod
    def _execute(cls, conn: sqlite3.Connection, batch: list[_Op]) -> list[tuple[bool, Any]]:
        results: list[tuple[bool, Any]] = [(False, None)] * len(batch)
        # Calls of one `many` function run together, where the first of them was queued
        # (concurrent calls have no order among themselves; they all commit together).
        groups: dict[Many, list[int]] = {}
        order: list[tuple[Many | None, int]] = []
        for i, op in enumerate(batch):
            if op.many is None:
                order.append((None, i))
            elif op.many in groups:
                groups[op.many].append(i)
            else:
                groups[op.many] = [i]
                order.append((op.many, i))
        try:
            conn.execute("BEGIN IMMEDIATE")
            for many, i in order:
                if many is None:
                    results[i] = cls._one(conn, lambda op=batch[i]: op.fn(conn))
                    continue
                members = groups[many]
                ok, outs = cls._one(conn, lambda m=many, ix=members: m(
                    conn, [batch[j].item for j in ix]))
                if ok and len(outs) == len(members):
                    for j, out in zip(members, outs, strict=True):
                        results[j] = (True, out)
                    continue
                for j in members:  # the group failed: each alone, so only the bad one fails
                    results[j] = cls._one(conn, lambda m=many, it=batch[j].item: m(conn, [it])[0])
            conn.execute("COMMIT")
        except Exception as e:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            return [(False, e)] * len(batch)
        return results

    def _deliver(self, batch: list[_Op], results: list[tuple[bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        committed = any(ok for ok, _ in results)
        for op, result in zip(batch, results, strict=True):
            by_loop.setdefault(op.loop, []).append((op.fut, result))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._resolve, items,
                                          self._on_commit if committed else None)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass

    @staticmethod
    def _resolve(items: list, on_commit: Callable[[], None] | None) -> None:
        for fut, (ok, value) in items:
            if fut.done():  # the caller was cancelled; the write stands (callers are
                continue    # idempotent or re-read)
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        if on_commit is not None:
            on_commit()


class ReadPool:
    """Reader threads, each with its own connection, for `SqliteDatabase.read`."""

    def __init__(self, path: pathlib.Path, threads: int = 2) -> None:
        self._path = path
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=f"sqlite-reader:{path.name}")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect_sync(self._path)
            with self._lock:
                self._conns.append(conn)
        return conn

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            conn.execute("COMMIT")

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._call, fn)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
