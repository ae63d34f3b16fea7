"""PostgreSQL for tests: a throwaway database per test session.

`postgres_url` (session fixture, registered in tests/conftest.py) creates
`zynk_test_<time>_<random>` on the server named by ZYNK_TEST_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/postgres, the CI machine's trust-auth server), yields
its URL and drops it at the end, so parallel runs (and pytest-xdist workers, each its own
session) never share one. Databases that a killed run left behind are dropped once they are
a day old.

No server? In CI (CI=true) every test that needs PostgreSQL fails, naming the cause; on a
developer machine those tests are skipped with the same reason (-ra shows it).

Inside the session database, give each test its own schema (`fresh_schema`) when it must
not see other tests' rows; `open_test_database` does that and applies migrations:

    async def test_something(postgres_url):
        db = await open_test_database(postgres_url, [MY_MIGRATIONS])
        try: ...
        finally: await db.close()
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
import time
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from services.runtime.config import PostgresSettings, Settings
from services.runtime.postgres import PostgresDatabase

ADMIN_URL_ENV = "ZYNK_TEST_POSTGRES_URL"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PREFIX = "zynk_test_"
STALE_AFTER_S = 24 * 3600
# Short limits so a broken test fails fast instead of waiting on defaults.
TEST_SETTINGS = PostgresSettings(pool_max_size=20, statement_timeout_s=10.0,
                                 connect_timeout_s=3.0, acquire_timeout_s=10.0,
                                 migration_lock_timeout_s=30.0)


def on_postgres(settings: Settings, url: str) -> Settings:
    """`settings` with PostgreSQL storage at `url` (the test database) and TEST_SETTINGS."""
    settings.backends.storage = "postgres"
    settings.backends.database_url = url
    settings.postgres = TEST_SETTINGS
    return settings


def admin_url() -> str:
    return os.environ.get(ADMIN_URL_ENV) or DEFAULT_ADMIN_URL


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def unreachable(reason: str) -> None:
    """Fail (CI) or skip (elsewhere) the tests that need PostgreSQL, loudly either way."""
    message = (f"PostgreSQL is not reachable at {admin_url()} ({reason}); start it with "
               "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
               f"or point {ADMIN_URL_ENV} at a server where this user may CREATE DATABASE")
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def _admin() -> psycopg.Connection:
    # Synchronous on purpose: the session fixture must be usable from any test or fixture,
    # including through request.getfixturevalue inside async fixtures.
    try:
        return psycopg.connect(admin_url(), autocommit=True, connect_timeout=5)
    except psycopg.Error as e:
        unreachable(f"{type(e).__name__}: {e}".strip())
        raise  # unreachable() always raises


def _drop_stale(conn: psycopg.Connection) -> None:
    cutoff = time.time() - STALE_AFTER_S
    for (name,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                (PREFIX + "%",)).fetchall():
        stamp = name[len(PREFIX):].split("_")[0]
        if stamp.isdigit() and int(stamp) < cutoff:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def temporary_database() -> Iterator[str]:
    """A new empty database for as long as the block runs; yields its URL."""
    name = f"{PREFIX}{int(time.time())}_{secrets.token_hex(4)}"
    with _admin() as conn:
        _drop_stale(conn)
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_url(), name)
    finally:
        with _admin() as conn:
            # FORCE: a pool a failed test leaked must not keep the database alive.
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    from tests.support.backends import ensure_postgres

    ensure_postgres()  # starts the local cluster if it is down; failing that, _admin() says why
    with temporary_database() as url:
        yield url


def fresh_schema(prefix: str = "t") -> str:
    return f"{prefix}_{secrets.token_hex(5)}"


async def open_test_database(url: str, migrations: Sequence[pathlib.Path] = (), *,
                             schema: str | None = None, **overrides) -> PostgresDatabase:
    """A PostgresDatabase on a fresh schema of `url` with the runtime's and `migrations`
    applied, with TEST_SETTINGS (fields in `overrides` replace them)."""
    settings = TEST_SETTINGS.model_copy(update=overrides)
    return await PostgresDatabase.open(url, schema or fresh_schema(), migrations,
                                       settings=settings)
