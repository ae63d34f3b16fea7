"""PostgreSQL configuration that needs no server: URLs, schema names, error mapping."""

from __future__ import annotations

import asyncpg
import grpc
import pytest

from services.runtime import errors
from services.runtime.config import Backends, PostgresSettings, Settings
from services.runtime.urls import redact_url
from services.runtime.postgres import (
    check_schema,
    database_url_for,
    plain_url,
    service_migrations,
    translate,
    yoyo_url,
)


def test_schema_names_are_plain_identifiers():
    for ok in ("auth", "messaging", "t_0a1b", "_x"):
        assert check_schema(ok) == ok
    for bad in ("", "Auth", "1x", "a-b", 'a"b', "a;b", "x" * 64, "auth public"):
        with pytest.raises(ValueError):
            check_schema(bad)


def test_each_service_finds_its_database():
    s = Settings(backends=Backends(), postgres=PostgresSettings())  # not from the environment
    with pytest.raises(ValueError, match="ZYNK_BACKENDS__DATABASE_URL"):
        database_url_for(s, "auth")
    s.backends.database_url = "postgresql://zynk@db/zynk"
    s.postgres.database_urls = {"messaging": "postgresql://zynk@msgdb/messages"}
    assert database_url_for(s, "auth") == "postgresql://zynk@db/zynk"
    assert database_url_for(s, "messaging") == "postgresql://zynk@msgdb/messages"
    assert service_migrations("auth").is_dir()


def test_urls_for_each_driver():
    url = "postgres://u:p%40ss@db:5433/zynk?sslmode=require"
    assert plain_url(url) == "postgresql://u:p%40ss@db:5433/zynk?sslmode=require"
    assert plain_url("postgresql+psycopg://db/zynk") == "postgresql://db/zynk"
    y = yoyo_url(url, "auth", 5)
    assert y.startswith("postgresql+psycopg://u:p%40ss@db:5433/zynk?")
    assert "sslmode=require" in y and "schema=%22auth%22%2Cpublic" in y and "connect_timeout=5" in y
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        plain_url("mysql://u:secret@db/zynk")
    with pytest.raises(ValueError) as e:
        plain_url("mysql://u:secret@db/zynk")
    assert "secret" not in str(e.value)


def test_redact_hides_only_the_password():
    assert redact_url("postgresql://u:secret@db:5432/zynk") == "postgresql://u:***@db:5432/zynk"
    assert redact_url("postgresql://u@db/zynk") == "postgresql://u@db/zynk"


@pytest.mark.parametrize(("exc", "kind", "reason"), [
    (ConnectionRefusedError(), errors.Unavailable, "DATABASE_UNAVAILABLE"),
    (TimeoutError(), errors.Unavailable, "DATABASE_UNAVAILABLE"),
    (asyncpg.ConnectionDoesNotExistError("gone"), errors.Unavailable, "DATABASE_UNAVAILABLE"),
    (asyncpg.AdminShutdownError("bye"), errors.Unavailable, "DATABASE_UNAVAILABLE"),
    (asyncpg.TooManyConnectionsError("full"), errors.Unavailable, "DATABASE_UNAVAILABLE"),
    (asyncpg.InterfaceError("cannot perform operation: connection is closed"),
     errors.Unavailable, "DATABASE_UNAVAILABLE"),
    # A session the server ended, whose FATAL reached asyncpg before the socket's end did.
    (asyncpg.exceptions.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress"),
     errors.Unavailable, "DATABASE_UNAVAILABLE"),
    (asyncpg.QueryCanceledError("statement timeout"), errors.Unavailable, "DATABASE_TIMEOUT"),
    (asyncpg.LockNotAvailableError("lock timeout"), errors.Unavailable, "DATABASE_TIMEOUT"),
    (asyncpg.SerializationError("conflict"), errors.Aborted, "TRANSACTION_CONFLICT"),
    (asyncpg.DeadlockDetectedError("deadlock"), errors.Aborted, "TRANSACTION_CONFLICT"),
])
def test_database_failures_become_retryable_errors(exc, kind, reason):
    mapped = translate(exc)
    assert type(mapped) is kind and mapped.reason == reason
    assert mapped.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED)


@pytest.mark.parametrize("exc", [
    asyncpg.UniqueViolationError("dup"), asyncpg.UndefinedTableError("no such table"),
    asyncpg.InterfaceError("another operation is in progress"), ValueError("bug"),
])
def test_other_failures_pass_through(exc):
    assert translate(exc) is None
