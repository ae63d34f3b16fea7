"""Fixtures every suite may use: the real backends (Tansu, Redis, PostgreSQL) and the
bus_backend / cache_backend parametrisations. See tests/support/backends.py (Kafka, Redis)
and tests/support/postgres.py (a throwaway database per test run)."""

from tests.support.backends import (  # noqa: F401
    backend_settings,
    bus_backend,
    cache_backend,
    kafka_broker,
    kafka_process,
    process_backends,
    redis_process,
    redis_url,
)
from tests.support.postgres import postgres_url  # noqa: F401
