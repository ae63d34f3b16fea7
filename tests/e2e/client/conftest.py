"""SDK clients against the embedded mesh (tests/e2e/conftest.py), through the real gateway."""

from __future__ import annotations

import uuid

import pytest

from clients.sdk.client import ZynkClient
from clients.sdk.store import KdfParams

FAST_KDF = KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1)
PASSWORD = "correct horse battery"
PASSPHRASE = "profile passphrase"


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def server(mesh) -> str:
    return mesh.gateway_url


@pytest.fixture
async def make_client(server, tmp_path):
    """make_client("alice") registers a fresh unique account and logs a device in;
    make_client(username=existing) logs another device of that account in."""
    opened: list[ZynkClient] = []
    profiles = iter(range(1000))

    async def make(prefix: str = "u", *, username: str | None = None,
                   device: str = "test device") -> ZynkClient:
        if username is None:
            username = unique(prefix)
            await ZynkClient.register(server, username, PASSWORD)
        client = await ZynkClient.login(tmp_path, f"p{next(profiles)}", PASSPHRASE, server,
                                        username, PASSWORD, device, FAST_KDF)
        opened.append(client)
        return client

    yield make
    for c in opened:
        await c.close()
