"""End-to-end fixtures: the whole embedded mesh (every service + the gateway, as `zynk up`
runs it) started once per test session on free loopback ports, driven over real HTTP."""

from __future__ import annotations

import pathlib

import httpx
import pytest

from mesh.embedded import EmbeddedMesh
from services.runtime.config import Ports
from tests.support.auth import auth_test_settings


def mesh_settings(data_dir: pathlib.Path):
    settings = auth_test_settings(data_dir)
    settings.ports = Ports(**{name: 0 for name in Ports.model_fields})
    settings.shutdown_grace_s = 1.0
    return settings


@pytest.fixture(scope="session")
async def mesh(tmp_path_factory):
    m = EmbeddedMesh(mesh_settings(tmp_path_factory.mktemp("mesh")))
    await m.start()
    yield m
    await m.stop()


@pytest.fixture(scope="session")
async def http(mesh):
    async with httpx.AsyncClient(base_url=mesh.gateway_url, timeout=10) as client:
        yield client
