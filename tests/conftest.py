"""Fixtures every suite may use: the real backends (Tansu, Redis, PostgreSQL) and the
bus_backend / cache_backend parametrisations. See tests/support/backends.py."""

from tests.support.backends import (  # noqa: F401
    backend_settings,
    bus_backend,
    cache_backend,
    kafka_broker,
    postgres_url,
    process_backends,
    redis_process,
    redis_url,
)
