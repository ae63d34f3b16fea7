"""PostgresDatabase against a real PostgreSQL: transactions, schemas, timeouts, lost
connections, conflicts, and migrations (yoyo) under concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from urllib.parse import urlsplit

import psycopg
import pytest

from services.runtime import errors
from services.runtime.urls import redact_url
from services.runtime.postgres import (
    RUNTIME_MIGRATIONS,
    PostgresDatabase,
    apply_migrations,
    pending_migrations,
)
from tests.support.postgres import TEST_SETTINGS, fresh_schema, open_test_database

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def db(postgres_url):
    d = await open_test_database(postgres_url)
    await d.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT NOT NULL)")
    yield d
    await d.close()


class Boom(Exception):
    pass


async def test_a_transaction_commits_everything_or_nothing(db):
    commits = []
    db.on_commit(lambda: commits.append(1))
    with pytest.raises(Boom):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
            raise Boom
    assert await db.fetchval("SELECT count(*) FROM t") == 0 and commits == []
    # A failing statement aborts the whole transaction too.
    with pytest.raises(Exception, match="duplicate key"):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (1, 'a')")
            await tx.execute("INSERT INTO t VALUES (1, 'again')")
    assert await db.fetchval("SELECT count(*) FROM t") == 0 and commits == []
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    assert [tuple(r) for r in await db.fetch("SELECT id, v FROM t ORDER BY id")] == [
        (1, "a"), (2, "b")]
    assert (await db.fetchrow("SELECT v FROM t WHERE id = $1", 2))["v"] == "b"
    assert commits == [1]


async def test_each_service_lives_in_its_own_schema(postgres_url):
    a = await open_test_database(postgres_url, schema=fresh_schema("svc_a"))
    b = await open_test_database(postgres_url, schema=fresh_schema("svc_b"))
    try:
        for d, value in ((a, "from a"), (b, "from b")):
            await d.execute("CREATE TABLE notes (v TEXT)")
            await d.execute("INSERT INTO notes VALUES ($1)", value)
        assert await a.fetchval("SELECT v FROM notes") == "from a"
        assert await b.fetchval("SELECT v FROM notes") == "from b"
        assert await a.fetchval("SELECT current_schema()") == a.schema
        # Unqualified names resolve in the service's schema; both have the runtime tables.
        assert await b.fetchval("SELECT to_regclass('outbox')::text") == "outbox"
        assert await b.fetchval("SELECT to_regclass($1)::text",
                                f"{a.schema}.notes") == f"{a.schema}.notes"
    finally:
        await a.close()
        await b.close()


async def test_a_bad_schema_name_is_refused(postgres_url):
    with pytest.raises(ValueError, match="invalid schema name"):
        await PostgresDatabase.open(postgres_url, 'x"; DROP TABLE users; --')


async def test_a_slow_statement_is_cut_off_with_a_retryable_error(postgres_url):
    d = await open_test_database(postgres_url, statement_timeout_s=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(errors.Unavailable) as e:
            await d.fetchval("SELECT pg_sleep(3)")
        assert e.value.reason == "DATABASE_TIMEOUT" and time.monotonic() - started < 2
        with pytest.raises(errors.Unavailable):
            async with d.transaction() as tx:
                await tx.execute("SELECT pg_sleep(3)")
        assert await d.fetchval("SELECT 1") == 1  # the pool is fine afterwards
    finally:
        await d.close()


async def test_a_lost_connection_is_unavailable_and_the_pool_recovers(db):
    with pytest.raises(errors.Unavailable) as e:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (1, 'lost')")
            pid = await tx.fetchval("SELECT pg_backend_pid()")
            await db.fetchval("SELECT pg_terminate_backend($1)", pid)  # another connection
            await tx.execute("INSERT INTO t VALUES (2, 'lost')")
    assert e.value.reason == "DATABASE_UNAVAILABLE"
    assert e.value.code.name == "UNAVAILABLE"
    assert await db.fetchval("SELECT count(*) FROM t") == 0
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO t VALUES (3, 'ok')")
    assert await db.fetchval("SELECT count(*) FROM t") == 1


async def test_sessions_ended_by_the_server_under_load_are_only_ever_unavailable(postgres_url):
    # Found by tests/faults (PostgreSQL stopped under load: one HTTP 500 among the 503s).
    # Ending sessions while calls are in flight, as `pg_ctl stop -m fast` does, sometimes
    # makes asyncpg raise InternalClientError ("cannot switch to state ...; another operation
    # (2) is in progress") instead of a connection error; it must be UNAVAILABLE like the
    # rest, never an unexpected error (INTERNAL, HTTP 500). Only this pool's own sessions are
    # ended (its application_name is unique to its schema).
    d = await open_test_database(postgres_url, pool_min_size=4, pool_max_size=4)
    admin = await psycopg.AsyncConnection.connect(postgres_url, autocommit=True)
    outcomes: dict[str, int] = {}

    async def call(i: int) -> None:
        try:
            if i % 2:
                await d.fetchval("SELECT pg_sleep(0.001)")
            else:
                async with d.transaction() as tx:
                    await tx.execute("SELECT pg_sleep(0.001)")
            kind = "ok"
        except errors.Unavailable:
            kind = "unavailable"
        except Exception as e:  # noqa: BLE001 - what the test is looking for
            kind = f"{type(e).__name__}: {e}"
        outcomes[kind] = outcomes.get(kind, 0) + 1

    try:
        for _ in range(60):
            calls = [asyncio.create_task(call(i)) for i in range(4)]
            await asyncio.sleep(0)
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE application_name = %s", (f"zynk-{d.schema}",))
            await asyncio.gather(*calls)
        assert set(outcomes) <= {"ok", "unavailable"}, outcomes
        assert outcomes.get("unavailable"), outcomes  # the sessions really were ended
        assert await d.fetchval("SELECT 1") == 1  # and the pool recovers
    finally:
        await admin.close()
        await d.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_no_server_is_a_clear_error_at_once():
    url = f"postgresql://zynk:secret@127.0.0.1:{_free_port()}/zynk"
    started = time.monotonic()
    with pytest.raises(errors.Unavailable) as e:
        await PostgresDatabase.open(url, "auth", settings=TEST_SETTINGS)
    assert time.monotonic() - started < 2
    assert "cannot reach PostgreSQL" in e.value.message and "secret" not in e.value.message
    assert redact_url(url) == f"postgresql://zynk:***@127.0.0.1:{url.split(':')[3]}"


class FreezableProxy:
    """A TCP relay to PostgreSQL that can stop passing bytes: a network that goes silent
    without closing anything (the case that hangs clients without timeouts)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.frozen = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(src, dst):
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    if self.frozen.is_set():
                        await asyncio.Event().wait()  # swallow and never answer
                    dst.write(data)
                    await dst.drain()

        for t in (pipe(reader, up_writer), pipe(up_reader, writer)):
            task = asyncio.create_task(t)
            self._tasks.add(task)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._server.close()


async def test_a_silent_network_is_unavailable_not_a_hang(postgres_url):
    target = urlsplit(postgres_url)
    proxy = FreezableProxy((target.hostname, target.port))
    port = await proxy.start()
    url = postgres_url.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{port}")
    d = await open_test_database(url, statement_timeout_s=0.3, connect_timeout_s=0.5)
    try:
        assert await d.fetchval("SELECT 1") == 1
        started = time.monotonic()
        with pytest.raises(errors.Unavailable) as e:
            async with d.transaction() as tx:
                await tx.execute("SELECT 1")
                proxy.frozen.set()
                await tx.execute("SELECT 2")
        assert e.value.reason == "DATABASE_UNAVAILABLE"
        assert time.monotonic() - started < 4
        started = time.monotonic()
        with pytest.raises(errors.Unavailable):
            await d.fetchval("SELECT 3")
        assert time.monotonic() - started < 3
    finally:
        await proxy.close()
        await d.close()


async def test_serialisation_conflicts_are_retried(db):
    await db.execute("INSERT INTO t VALUES (1, '0')")
    both_read = asyncio.Barrier(2)
    attempts = []

    async def increment(tx):
        attempts.append(1)
        value = int(await tx.fetchval("SELECT v FROM t WHERE id = 1"))
        if len(attempts) <= 2:
            await both_read.wait()  # make the first two attempts overlap
        await tx.execute("UPDATE t SET v = $1 WHERE id = 1", str(value + 1))

    await asyncio.gather(db.run_in_transaction(increment), db.run_in_transaction(increment))
    assert await db.fetchval("SELECT v FROM t WHERE id = 1") == "2"
    assert len(attempts) == 3  # one of the first two lost and ran again

    # Without the retry, the loser sees Aborted (ABORTED, retryable by the client).
    both_read = asyncio.Barrier(2)

    async def once():
        async with db.transaction(isolation="serializable") as tx:
            value = int(await tx.fetchval("SELECT v FROM t WHERE id = 1"))
            await both_read.wait()
            await tx.execute("UPDATE t SET v = $1 WHERE id = 1", str(value + 1))

    results = await asyncio.gather(once(), once(), return_exceptions=True)
    [lost] = [r for r in results if r is not None]
    assert isinstance(lost, errors.Aborted) and lost.reason == "TRANSACTION_CONFLICT"
    assert await db.fetchval("SELECT v FROM t WHERE id = 1") == "3"


# -- migrations --------------------------------------------------------------------------------


def write(path, text: str):
    path.write_text(text)
    return path


async def test_migrations_apply_once_and_report_what_they_did(postgres_url, tmp_path):
    write(tmp_path / "svc_0001_init.sql", "CREATE TABLE things (id INT PRIMARY KEY);")
    schema = fresh_schema()
    dirs = [RUNTIME_MIGRATIONS, tmp_path]
    assert pending_migrations(postgres_url, schema, dirs) == [
        "runtime_0001_outbox", "svc_0001_init"]
    assert apply_migrations(postgres_url, schema, dirs) == [
        "runtime_0001_outbox", "svc_0001_init"]
    assert apply_migrations(postgres_url, schema, dirs) == []
    write(tmp_path / "svc_0002_more.sql", "ALTER TABLE things ADD COLUMN name TEXT;")
    assert pending_migrations(postgres_url, schema, dirs) == ["svc_0002_more"]
    assert apply_migrations(postgres_url, schema, dirs) == ["svc_0002_more"]
    assert pending_migrations(postgres_url, schema, dirs) == []


async def test_a_failed_migration_leaves_nothing_behind(postgres_url, tmp_path):
    write(tmp_path / "svc_0001_init.sql", "CREATE TABLE things (id INT PRIMARY KEY);")
    write(tmp_path / "svc_0002_broken.sql",
          "CREATE TABLE half (id INT);\nALTER TABLE nowhere ADD COLUMN x INT;")
    schema = fresh_schema()
    with pytest.raises(Exception, match="nowhere"):
        apply_migrations(postgres_url, schema, [tmp_path])
    assert pending_migrations(postgres_url, schema, [tmp_path]) == ["svc_0002_broken"]
    with psycopg.connect(postgres_url) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,))}
    assert "things" in tables and "half" not in tables


async def test_opening_with_pending_migrations_can_be_refused(postgres_url, tmp_path):
    write(tmp_path / "svc_0001_init.sql", "CREATE TABLE things (id INT PRIMARY KEY);")
    schema = fresh_schema()
    with pytest.raises(errors.FailedPrecondition, match="zynk migrate") as e:
        await open_test_database(postgres_url, [tmp_path], schema=schema,
                                 migrate_on_start=False)
    assert e.value.reason == "MIGRATIONS_PENDING"
    apply_migrations(postgres_url, schema, [RUNTIME_MIGRATIONS, tmp_path])
    d = await open_test_database(postgres_url, [tmp_path], schema=schema,
                                 migrate_on_start=False)
    assert await d.fetchval("SELECT count(*) FROM things") == 0
    await d.close()


async def test_concurrent_migrators_take_turns(postgres_url, tmp_path):
    # Slow enough that the migrators really overlap.
    write(tmp_path / "svc_0001_slow.sql",
          "SELECT pg_sleep(0.3);\nCREATE TABLE once (id INT PRIMARY KEY);")
    schema = fresh_schema()
    results = await asyncio.gather(*[
        asyncio.to_thread(apply_migrations, postgres_url, schema,
                          [RUNTIME_MIGRATIONS, tmp_path]) for _ in range(4)])
    assert sorted(results, key=len) == [[], [], [], ["runtime_0001_outbox", "svc_0001_slow"]]


async def test_a_killed_migrators_yoyo_lock_does_not_block_the_next(postgres_url, tmp_path):
    write(tmp_path / "svc_0001_init.sql", "CREATE TABLE things (id INT PRIMARY KEY);")
    schema = fresh_schema()
    apply_migrations(postgres_url, schema, [tmp_path])
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # what kill -9 leaves
        conn.execute(f'INSERT INTO "{schema}".yoyo_lock (locked, ctime, pid)'
                     " VALUES (1, now(), 424242)")
    write(tmp_path / "svc_0002_more.sql", "ALTER TABLE things ADD COLUMN name TEXT;")
    started = time.monotonic()
    assert apply_migrations(postgres_url, schema, [tmp_path]) == ["svc_0002_more"]
    assert time.monotonic() - started < 5
