"""PostgreSQL storage for the distributed mode: an asyncpg pool per service per process,
each service in its own schema, versioned migrations applied with yoyo-migrations.

A service's tables live in schema `<service>`; its pool connections have
`search_path = <service>, public`, so SQL names tables unqualified and one database can hold
every service (or `postgres.database_urls` sends a service to its own database). Extensions
go in `public`.

Every pooled connection carries `statement_timeout` and `idle_in_transaction_session_timeout`
(the server stops a runaway statement or an abandoned transaction), and every call has a
client-side timeout as well, so a dead server or a silent network gives a clear retryable
error (errors.Unavailable) instead of a hang. Serialisation failures and deadlocks become
errors.Aborted (reason TRANSACTION_CONFLICT): retry the whole transaction
(`run_in_transaction` does)."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from services.runtime.urls import redact_url
from services.runtime import errors
from services.runtime import logging as zlog
from services.runtime.config import PostgresSettings, Settings

log = zlog.get("postgres")

RUNTIME_MIGRATIONS = pathlib.Path(__file__).parent / "migrations" / "postgres"
SERVICES_DIR = pathlib.Path(__file__).resolve().parent.parent

# Advisory-lock namespaces (the first key of pg_advisory_lock(int, int)); the second key is
# hashtext() of the schema or table the lock is about.
LOCK_MIGRATE = 0x7A6B0001
LOCK_OUTBOX = 0x7A6B0002
LOCK_PARTITIONS = 0x7A6B0003

Isolation = Literal["read_committed", "repeatable_read", "serializable"]
T = TypeVar("T")

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_TIMEOUT_MARGIN_S = 1.0


# -- names and URLs --------------------------------------------------------------------------


def check_schema(schema: str) -> str:
    """Schema names are spliced into SQL (search_path, CREATE SCHEMA): only plain lower-case
    identifiers are accepted."""
    if not _SCHEMA.fullmatch(schema):
        raise ValueError(f"invalid schema name {schema!r}: use [a-z_][a-z0-9_]*")
    return schema


def database_url_for(settings: Settings, service: str) -> str:
    url = settings.postgres.database_urls.get(service) or settings.backends.database_url
    if not url:
        raise ValueError(
            f"no PostgreSQL database for {service}: set ZYNK_BACKENDS__DATABASE_URL "
            f"(or ZYNK_POSTGRES__DATABASE_URLS for one service)")
    return url


def service_migrations(service: str) -> pathlib.Path:
    """Where a service keeps its PostgreSQL migrations: services/<service>/migrations/postgres."""
    return SERVICES_DIR / service / "migrations" / "postgres"


def _split(url: str):
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgres", "postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {redact_url(url)!r} (want postgresql://...)")
    return parts


def plain_url(url: str) -> str:
    """The `postgresql://` form that both asyncpg and libpq (psycopg) accept."""
    return urlunsplit(_split(url)._replace(scheme="postgresql"))


def yoyo_url(url: str, schema: str, connect_timeout_s: float) -> str:
    """yoyo's psycopg 3 backend (`postgresql+psycopg`); its `schema` argument becomes the
    migration connection's search_path, so yoyo's own tables live in the schema too. yoyo
    splices it into `SET search_path TO ...` as is: quoted, so a schema named after a
    reserved word (the group service's `group`) works."""
    parts = _split(url)
    query = dict(parse_qsl(parts.query))
    query["schema"] = f'"{check_schema(schema)}",public'
    query.setdefault("connect_timeout", str(max(2, round(connect_timeout_s))))
    return urlunsplit(parts._replace(scheme="postgresql+psycopg", query=urlencode(query)))


# -- migrations (yoyo, synchronous: call through asyncio.to_thread from async code) -----------


def _connect(url: str, connect_timeout_s: float):
    import psycopg

    try:  # libpq takes whole seconds, at least 2
        return psycopg.connect(plain_url(url), autocommit=True,
                               connect_timeout=max(2, round(connect_timeout_s)))
    except psycopg.OperationalError as e:
        raise errors.Unavailable(f"cannot reach PostgreSQL at {redact_url(url)}: {e}",
                                 reason="DATABASE_UNAVAILABLE") from e


def apply_migrations(url: str, schema: str, directories: Iterable[pathlib.Path], *,
                     lock_timeout_s: float = 60.0, connect_timeout_s: float = 5.0) -> list[str]:
    """Create `schema` if needed and apply its pending migrations from `directories` (in
    order); returns the ids applied. Concurrent callers for the same schema (several
    replicas starting, two `zynk migrate`s) take turns on a session-level advisory lock,
    which PostgreSQL releases by itself if the holder dies mid-way."""
    import psycopg
    from yoyo import get_backend, read_migrations

    check_schema(schema)
    with _connect(url, connect_timeout_s) as lock:
        lock.execute(f"SET lock_timeout = {int(lock_timeout_s * 1000)}")
        try:
            lock.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_MIGRATE, schema))
        except psycopg.errors.LockNotAvailable as e:
            raise errors.Unavailable(
                f"schema {schema}: another migration held the lock for {lock_timeout_s:g}s",
                reason="MIGRATION_LOCKED") from e
        lock.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        backend = get_backend(yoyo_url(url, schema, connect_timeout_s))
        try:
            # Under our lock nobody else migrates this schema, so a yoyo lock row left by a
            # killed run is stale: clear it rather than wait for it.
            backend.break_lock()
            migrations = read_migrations(*[str(d) for d in directories if d.is_dir()])
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
            return [m.id for m in pending]
        finally:
            backend.connection.close()


def pending_migrations(url: str, schema: str, directories: Iterable[pathlib.Path], *,
                       connect_timeout_s: float = 5.0) -> list[str]:
    """Ids of the migrations not yet applied to `schema` (read-only)."""
    from yoyo import read_migrations

    check_schema(schema)
    migrations = read_migrations(*[str(d) for d in directories if d.is_dir()])
    with _connect(url, connect_timeout_s) as conn:
        exists = conn.execute("SELECT to_regclass(%s)",
                              (f'"{schema}"._yoyo_migration',)).fetchone()[0]
        applied: set[str] = set()
        if exists is not None:
            applied = {r[0] for r in conn.execute(
                f'SELECT migration_hash FROM "{schema}"._yoyo_migration')}
    return [m.id for m in migrations if m.hash not in applied]


# -- errors ----------------------------------------------------------------------------------

_CONNECTION_LOST = (
    OSError,  # refused, reset, unreachable, DNS
    TimeoutError,  # connect, pool acquire, or a call that outlived its client-side timeout
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError, asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError, asyncpg.IdleInTransactionSessionTimeoutError,
    asyncpg.exceptions.IdleSessionTimeoutError, asyncpg.exceptions.DatabaseDroppedError,
)


def translate(exc: BaseException) -> errors.ZynkError | None:
    """The caller-facing error for a database failure, or None when `exc` is not one we
    map (constraint violations, bugs in SQL, domain errors: they propagate unchanged)."""
    if isinstance(exc, (asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError)):
        return errors.Unavailable("the database did not answer in time; retry",
                                  reason="DATABASE_TIMEOUT")
    if isinstance(exc, (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)):
        return errors.Aborted("a concurrent change conflicted; retry",
                              reason="TRANSACTION_CONFLICT")
    if isinstance(exc, _CONNECTION_LOST) or (
            isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)) or (
            # When the server ends a session (`pg_ctl stop/restart -m fast`, a failover,
            # pg_terminate_backend) the FATAL it sends can reach asyncpg before the socket's
            # end does: the connection then refuses its next operation with "cannot switch
            # to state N; another operation (2) is in progress" (2: consuming an error).
            # Measured: ~10% of the calls in flight when a backend is terminated. The
            # session is gone, as with a lost connection (and unlike InterfaceError's
            # "another operation is in progress", two callers on one connection: a bug).
            isinstance(exc, asyncpg.exceptions.InternalClientError)
            and "another operation" in str(exc)):
        return errors.Unavailable("the database is unavailable; retry",
                                  reason="DATABASE_UNAVAILABLE")
    return None


def _lost(conn: asyncpg.Connection) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:  # the pool already took back a connection the server closed
        return True


def _body_failure(e: Exception, conn: asyncpg.Connection) -> BaseException:
    """What a transaction block's exception becomes: database failures are translated (a
    TimeoutError there is taken for the client-side statement timeout), anything else (a
    domain error, a constraint the adapter handles, a failing broker) stays itself."""
    if isinstance(e, errors.ZynkError):
        return e
    mapped = None
    if isinstance(e, (asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)):
        mapped = translate(e)
    if mapped is None and _lost(conn):
        mapped = errors.Unavailable("the database connection was lost; retry",
                                    reason="DATABASE_UNAVAILABLE")
    if mapped is None:
        return e
    log.warning("database call failed", error=type(e).__name__, reason=mapped.reason)
    mapped.__cause__ = e
    return mapped


@contextlib.contextmanager
def _translated():
    try:
        yield
    except errors.ZynkError:
        raise
    except Exception as e:
        mapped = translate(e)
        if mapped is None:
            raise
        log.warning("database call failed", error=type(e).__name__, reason=mapped.reason)
        raise mapped from e


# -- the database ----------------------------------------------------------------------------


class PostgresDatabase:
    """One service's pool. `transaction()` hands out an asyncpg connection whose statements
    commit together or not at all; the fetch helpers run single statements outside one."""

    def __init__(self, pool: asyncpg.Pool, schema: str, acquire_timeout_s: float) -> None:
        self.schema = schema
        self._pool: asyncpg.Pool | None = pool
        self._acquire_timeout_s = acquire_timeout_s
        self._on_commit: list[Callable[[], None]] = []

    @classmethod
    async def open(cls, url: str, schema: str, migrations: Sequence[pathlib.Path] = (), *,
                   settings: PostgresSettings | None = None,
                   migrate: bool | None = None) -> PostgresDatabase:
        """Apply (or, with migrate=False, require) the runtime's and `migrations`, then open
        the pool. Raises errors.Unavailable when PostgreSQL cannot be reached."""
        s = settings or PostgresSettings()
        check_schema(schema)
        dirs = [RUNTIME_MIGRATIONS, *migrations]
        if s.migrate_on_start if migrate is None else migrate:
            applied = await asyncio.to_thread(
                apply_migrations, url, schema, dirs, lock_timeout_s=s.migration_lock_timeout_s,
                connect_timeout_s=s.connect_timeout_s)
            if applied:
                log.info("migrations applied", schema=schema, migrations=applied)
        else:
            pending = await asyncio.to_thread(pending_migrations, url, schema, dirs,
                                              connect_timeout_s=s.connect_timeout_s)
            if pending:
                raise errors.FailedPrecondition(
                    f"schema {schema} has pending migrations ({', '.join(pending)}): "
                    "run `zynk migrate`", reason="MIGRATIONS_PENDING")
        try:
            pool = await asyncpg.create_pool(
                plain_url(url), min_size=min(s.pool_min_size, s.pool_max_size),
                max_size=s.pool_max_size, timeout=s.connect_timeout_s,
                command_timeout=s.statement_timeout_s + _TIMEOUT_MARGIN_S,
                server_settings={
                    "search_path": f'"{schema}", public',
                    "statement_timeout": str(int(s.statement_timeout_s * 1000)),
                    "idle_in_transaction_session_timeout":
                        str(int(s.idle_in_transaction_timeout_s * 1000)),
                    "application_name": f"zynk-{schema}",
                })
        except Exception as e:
            if translate(e) is None:
                raise
            raise errors.Unavailable(f"cannot reach PostgreSQL at {redact_url(url)}: {e}",
                                     reason="DATABASE_UNAVAILABLE") from e
        return cls(pool, schema, s.acquire_timeout_s)

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` after every committed transaction of this process (e.g. wake the
        outbox relay). Other replicas' commits do not call it."""
        self._on_commit.append(callback)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("database is closed")
        return self._pool

    @contextlib.asynccontextmanager
    async def transaction(self, *, isolation: Isolation | None = None, readonly: bool = False,
                          notify: bool = True) -> AsyncIterator[asyncpg.Connection]:
        """BEGIN ... COMMIT, or ROLLBACK on any exception: never a partial write. The default
        isolation is the server's (READ COMMITTED): lock what you read-then-write
        (`SELECT ... FOR UPDATE`) or ask for "serializable" and retry on Aborted.
        notify=False skips the on-commit callbacks (the outbox relay's own transactions
        must not wake the relay)."""
        failed: BaseException | None = None
        # Acquire, BEGIN, ROLLBACK and COMMIT are the database's own calls: anything that
        # fails there is translated. What the block raises is judged by _body_failure.
        with _translated():
            async with self.pool.acquire(timeout=self._acquire_timeout_s) as conn:
                tr = conn.transaction(isolation=isolation, readonly=readonly)
                await tr.start()
                try:
                    yield conn
                except Exception as e:
                    failed = _body_failure(e, conn)
                    if isinstance(e, TimeoutError):
                        # The server may never answer a ROLLBACK either: drop the
                        # connection (the server rolls back when the session ends).
                        conn.terminate()
                    elif not _lost(conn):  # else the server rolled back when it went
                        await tr.rollback()
                except BaseException:  # cancelled
                    if not _lost(conn):
                        await tr.rollback()
                    raise
                else:
                    await tr.commit()
        if failed is not None:
            raise failed
        if notify:
            for cb in self._on_commit:
                cb()

    async def run_in_transaction(self, fn: Callable[[asyncpg.Connection], Awaitable[T]], *,
                                 isolation: Isolation = "serializable",
                                 attempts: int = 3) -> T:
        """`fn(conn)` in a transaction, retried (with a little jitter) when it lost a
        serialisation conflict or a deadlock. `fn` must have no effect outside the database."""
        for attempt in range(1, attempts + 1):
            try:
                async with self.transaction(isolation=isolation) as conn:
                    return await fn(conn)
            except errors.Aborted as e:
                if e.reason != "TRANSACTION_CONFLICT" or attempt == attempts:
                    raise
                await asyncio.sleep(random.uniform(0, 0.01 * 2 ** attempt))
        raise AssertionError("unreachable")

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        with _translated():
            return await self.pool.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        with _translated():
            return await self.pool.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        with _translated():
            return await self.pool.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        """One statement in its own transaction (no on-commit callbacks)."""
        with _translated():
            return await self.pool.execute(sql, *args)

    async def ping(self) -> None:
        """One round trip on a pooled connection (the process's health probe calls it)."""
        await self.fetchval("SELECT 1")

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 10)
            except TimeoutError:
                pool.terminate()


async def open_service_database(settings: Settings, service: str, *,
                                migrate: bool | None = None) -> PostgresDatabase:
    """The service's database by convention: schema `<service>`, migrations from
    services/<service>/migrations/postgres, URL and pool settings from `settings`."""
    return await PostgresDatabase.open(database_url_for(settings, service), service,
                                       [service_migrations(service)],
                                       settings=settings.postgres, migrate=migrate)
