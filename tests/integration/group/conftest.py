"""Fixtures: the group service and a recording messaging server, both over real gRPC on
127.0.0.1:0, beside the real auth service (tests/integration/conftest.py)."""

from __future__ import annotations

import pytest

from tests.integration.group.harness import group_settings, start_group, start_messaging


@pytest.fixture(scope="module")
async def messaging_server():
    harness = await start_messaging()
    yield harness
    await harness.stop()


@pytest.fixture
def messaging(messaging_server):
    """The module's messaging double, up and answering, for each test."""
    messaging_server.double.down = False
    messaging_server.double.lose_answers = 0
    yield messaging_server.double
    messaging_server.double.down = False
    messaging_server.double.lose_answers = 0


@pytest.fixture(scope="module")
async def group(auth, messaging_server, tmp_path_factory):
    harness = await start_group(group_settings(tmp_path_factory.mktemp("group"),
                                               max_members=8),
                                auth, messaging_server.address)
    yield harness
    await harness.stop()


@pytest.fixture
def fresh_group_settings(tmp_path):
    """Settings for group services a test starts itself, on a store of their own (empty, and
    shared by every service the test starts with them). test_group_postgres.py overrides it
    with a fresh PostgreSQL database."""
    return group_settings(tmp_path)
