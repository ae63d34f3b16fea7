"""Delivery guarantees through the gateway with real SDK clients: an offline recipient gets
everything in order on reconnect, on each of its devices, exactly once."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.timeout(120)


async def receive(client, mode: str) -> list:
    got = []

    async def collect(events):
        got.extend(e for e in events if e.kind == "message")

    await asyncio.wait_for(client.listen(collect, follow=False, mode=mode), 60)
    return got


@pytest.mark.parametrize("mode", ["websocket", "rest"])
async def test_offline_recipient_gets_everything_in_order_on_each_device(make_client, mode):
    alice = await make_client("alice")
    bob_phone = await make_client("bob", device="phone")
    bob_laptop = await make_client(username=bob_phone.state.username, device="laptop")
    # Both of bob's devices are offline while alice writes.
    sent = [await alice.send_text(bob_phone.state.username, f"message {i}") for i in range(25)]
    for device in (bob_phone, bob_laptop):
        got = await receive(device, mode)
        assert [e.message_id for e in got] == sent  # all, in the order sent
        assert [e.text for e in got] == [f"message {i}" for i in range(25)]
        assert [e.sequence for e in got] == sorted(e.sequence for e in got)
        assert await receive(device, mode) == []  # acknowledged: never delivered twice


async def test_a_device_that_reconnects_mid_stream_resumes_without_gaps(make_client):
    alice, bob = await make_client("alice"), await make_client("bob")
    first = [await alice.send_text(bob.state.username, f"a{i}") for i in range(5)]
    assert [e.message_id for e in await receive(bob, "websocket")] == first
    second = [await alice.send_text(bob.state.username, f"b{i}") for i in range(5)]
    assert [e.message_id for e in await receive(bob, "websocket")] == second
