"""The server learns nothing it should not: after an end-to-end run — two users with two
devices each talking 1:1 both ways, and a group of three — no plaintext of any message and
no private key of any device appears anywhere the server keeps or moves data: its database
files (including WAL files), the events it puts on the bus, the realtime pub/sub messages
between its tasks, and its logs at DEBUG level.

Each message carries a random marker; the scan looks for it raw, hex-encoded and in base64 at
every alignment, so an encoded leak is caught too. Device secrets (identity keys, signed and
one-time prekeys, sender-key chains) are taken from the clients' own state and scanned for the
same way."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import uuid

import pytest
import structlog

from clients.sdk.client import ZynkClient
from mesh.embedded import EmbeddedMesh
from services.runtime import logging as zlog
from tests.e2e.client.conftest import FAST_KDF, PASSPHRASE, PASSWORD
from tests.e2e.conftest import mesh_settings

pytestmark = pytest.mark.timeout(150)

TOPICS = ("messages.sent", "messages.delivered", "messages.read", "users.registered",
          "groups.created", "devices.changed")


def encodings(secret: bytes) -> list[bytes]:
    """The secret raw, as hex, and as base64 (standard and URL-safe) at each of the three
    alignments it can start at inside a longer encoded string."""
    out = [secret, secret.hex().encode()]
    for shift in range(3):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = enc(b"\x00" * shift + secret)
            # Drop the characters that depend on neighbouring bytes.
            start = (shift * 4 + 2) // 3 + 1
            out.append(encoded[start:len(encoded) - 4])
    return [e for e in out if len(e) >= 12]


def device_secrets(client: ZynkClient) -> list[bytes]:
    model = client.state.crypto.keys._state.model
    found = [model.identity_key.secret, model.signed_pre_key.priv, *model.pre_keys]
    for key in client.state.crypto.group_keys.values():
        found += [key.key.chain_key, key.key.signing_private]
    return [s for s in found if s]


async def receive(client: ZynkClient, mode: str) -> list[str]:
    texts: list[str] = []

    async def collect(events):
        texts.extend(e.text for e in events if e.kind == "message")

    await asyncio.wait_for(client.listen(collect, follow=False, mode=mode), 60)
    return texts


async def test_no_plaintext_or_private_key_reaches_the_server(tmp_path):
    log_buffer = io.StringIO()
    saved = structlog.get_config()
    zlog.configure("DEBUG", "json", stream=log_buffer)
    std_handler = logging.StreamHandler(log_buffer)
    logging.getLogger().addHandler(std_handler)
    old_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.DEBUG)
    mesh = EmbeddedMesh(mesh_settings(tmp_path / "server"))
    await mesh.start()
    bus_payloads: list[bytes] = []
    pubsub_payloads: list[bytes] = []
    clients: list[ZynkClient] = []
    try:
        shared = mesh._shared
        assert shared is not None

        async def tap(event) -> None:
            bus_payloads.append(event.payload)

        for topic in TOPICS:
            shared.bus.subscribe(topic, f"zk-tap-{uuid.uuid4().hex}", tap)
        real_publish = shared.pubsub.publish

        async def spy(channel: str, data: bytes) -> None:
            pubsub_payloads.append(data)
            await real_publish(channel, data)

        shared.pubsub.publish = spy  # observe the wire between tasks; delivery unchanged

        server = mesh.gateway_url
        profiles = iter(range(100))

        async def device(username: str, name: str) -> ZynkClient:
            c = await ZynkClient.login(tmp_path / "clients", f"p{next(profiles)}", PASSPHRASE,
                                       server, username, PASSWORD, name, FAST_KDF)
            clients.append(c)
            return c

        users = {n: f"zk{n}{uuid.uuid4().hex[:8]}" for n in ("alice", "bob", "carol")}
        for u in users.values():
            await ZynkClient.register(server, u, PASSWORD)
        alice1, alice2 = await device(users["alice"], "a1"), await device(users["alice"], "a2")
        bob1, bob2 = await device(users["bob"], "b1"), await device(users["bob"], "b2")
        carol = await device(users["carol"], "c1")

        markers: list[str] = []

        def marker(what: str) -> str:
            m = f"zk-secret-{what}-{uuid.uuid4().hex}"
            markers.append(m)
            return m

        for i in range(3):
            await alice1.send_text(users["bob"], marker(f"a2b{i}"))
            await bob2.send_text(users["alice"], marker(f"b2a{i}"))
        group = await alice1.create_group("zk team", [users["bob"], users["carol"]])
        await receive(bob1, "websocket")
        await receive(carol, "rest")
        for sender in (alice1, bob1, carol):
            await sender.send_text(group.name, marker("group"))
        for c in (alice1, alice2, bob1, bob2, carol):
            texts = await receive(c, "websocket")
            assert all(t.startswith("zk-secret-") for t in texts)
        # The clients did decrypt what they were sent (the markers exist in plaintext on
        # the clients), so a clean scan is meaningful.
        assert any(m in str(h) for m in markers for h in bob1.state.history)
        secrets = [s for c in clients for s in device_secrets(c)]
        assert len(secrets) > 10
    finally:
        for c in clients:
            await c.close()
        await mesh.stop()
        logging.getLogger().removeHandler(std_handler)
        logging.getLogger().setLevel(old_level)
        structlog.configure(**saved)

    places: dict[str, bytes] = {}
    for path in sorted((tmp_path / "server").rglob("*")):
        if path.is_file():
            places[f"file {path.relative_to(tmp_path)}"] = path.read_bytes()
    assert any(name.endswith(".sqlite3") for name in places), "no database files scanned"
    places["logs"] = log_buffer.getvalue().encode()
    assert b"rpc" in places["logs"], "logging was not captured"
    places["bus"] = b"\n".join(bus_payloads)
    places["pubsub"] = b"\n".join(pubsub_payloads)
    assert bus_payloads and pubsub_payloads

    leaks = []
    for label, secret_set in (("plaintext", [m.encode() for m in markers]),
                              ("private key", secrets)):
        for secret in secret_set:
            for needle in encodings(secret):
                for where, data in places.items():
                    if needle in data:
                        leaks.append(f"{label} {secret[:24]!r} found in {where}")
    assert not leaks, "\n".join(sorted(set(leaks))[:20])
