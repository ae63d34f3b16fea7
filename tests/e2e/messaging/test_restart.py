"""A server crash loses nothing: `zynk up` is killed with SIGKILL (no drain, no clean
shutdown) while messages are queued for an offline device, started again on the same data
directory, and the device then receives every message the server had acknowledged — once,
in order — and nothing it had already acknowledged before the crash."""

from __future__ import annotations

import asyncio

import pytest

from clients.sdk.client import ZynkClient
from tests.e2e.client.conftest import FAST_KDF, PASSPHRASE, PASSWORD, unique
from tests.support.zynkup import ZynkUp

pytestmark = pytest.mark.timeout(150)


async def receive(client, mode: str = "websocket") -> list:
    got = []

    async def collect(events):
        got.extend(e for e in events if e.kind == "message")

    await asyncio.wait_for(client.listen(collect, follow=False, mode=mode), 60)
    return got


async def test_kill_9_loses_no_acknowledged_message(tmp_path):
    up = ZynkUp()
    try:
        await asyncio.to_thread(up.start)
        names = {"alice": unique("alice"), "bob": unique("bob")}
        for n in names.values():
            await ZynkClient.register(up.gateway, n, PASSWORD)
        alice = await ZynkClient.login(tmp_path, "alice", PASSPHRASE, up.gateway,
                                       names["alice"], PASSWORD, "laptop", FAST_KDF)
        bob = await ZynkClient.login(tmp_path, "bob", PASSPHRASE, up.gateway, names["bob"],
                                     PASSWORD, "phone", FAST_KDF)
        before = [await alice.send_text(names["bob"], f"before {i}") for i in range(3)]
        assert [e.message_id for e in await receive(bob)] == before  # and acknowledged
        queued = [await alice.send_text(names["bob"], f"queued {i}") for i in range(20)]

        await asyncio.to_thread(up.kill)  # SIGKILL: whatever was not durable is gone
        await asyncio.to_thread(up.start)

        got = await receive(bob)
        assert [e.message_id for e in got] == queued  # every acknowledged send, in order
        assert [e.text for e in got] == [f"queued {i}" for i in range(20)]
        # The server still works after the crash, and sessions survive it.
        after = await alice.send_text(names["bob"], "after the restart")
        assert [e.message_id for e in await receive(bob)] == [after]
        await alice.close()
        await bob.close()
    finally:
        await asyncio.to_thread(up.stop)
