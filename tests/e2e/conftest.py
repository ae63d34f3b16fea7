"""End-to-end fixtures: the whole mesh (every service + the gateway, as `zynk up` runs it)
started once per test session on free loopback ports, driven over real HTTP.

Every end-to-end test runs twice: on the embedded backends (SQLite, in-process bus, cache
and pub/sub) and on the distributed ones (PostgreSQL, Redis, Kafka), the same code chosen by
configuration only. In CI (CI=true) a missing server fails the run (tests/support)."""

from __future__ import annotations

import pathlib
import uuid

import httpx
import pytest

from mesh.embedded import EmbeddedMesh
from services.runtime.config import Backends, Ports
from tests.support.auth import auth_test_settings
from tests.support.backends import KAFKA_TEST_BACKENDS, KEY_PREFIX, TOPIC_PREFIX
from tests.support.postgres import TEST_SETTINGS


def mesh_settings(data_dir: pathlib.Path):
    settings = auth_test_settings(data_dir)
    settings.ports = Ports(**{name: 0 for name in Ports.model_fields})
    settings.shutdown_grace_s = 1.0
    return settings


def real_backends(request) -> Backends:
    """PostgreSQL (this run's throwaway database), Redis and Kafka (Tansu), with prefixes of
    this session's own so nothing is shared with another run."""
    run = uuid.uuid4().hex[:8]
    return Backends(storage="postgres", database_url=request.getfixturevalue("postgres_url"),
                    cache="redis", redis_url=request.getfixturevalue("redis_url"),
                    key_prefix=f"{KEY_PREFIX}e2e{run}:", bus="kafka",
                    kafka_bootstrap=request.getfixturevalue("kafka_broker").bootstrap,
                    topic_prefix=f"{TOPIC_PREFIX}e2e{run}.", **KAFKA_TEST_BACKENDS)


@pytest.fixture(scope="session", params=["embedded", "postgres-redis-kafka"])
async def mesh(request, tmp_path_factory):
    settings = mesh_settings(tmp_path_factory.mktemp(f"mesh-{request.param}"))
    if request.param != "embedded":
        settings.backends = real_backends(request)
        settings.postgres = TEST_SETTINGS
    m = EmbeddedMesh(settings)
    await m.start()
    yield m
    await m.stop()


@pytest.fixture(scope="session")
async def http(mesh):
    async with httpx.AsyncClient(base_url=mesh.gateway_url, timeout=10) as client:
        yield client
