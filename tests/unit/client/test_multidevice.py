"""Fan-out: every active device of every recipient AND the sender's other devices."""

import pytest

from clients.sdk import plaintext as pt
from tests.unit.client.conftest import device, send

pytestmark = pytest.mark.timeout(30)


async def test_fan_out_reaches_every_device_including_the_senders_others():
    alice1, alice2 = device("alice", 1), device("alice", 2)
    bob1, bob2, bob3 = device("bob", 1), device("bob", 2), device("bob", 3)
    w = await send(alice1, pt.Text("to all of you"), [bob1, bob2, bob3, alice2, alice1])
    assert set(w.out) == {bob1.device, bob2.device, bob3.device, alice2.device}  # not self
    ciphertexts = {ct for _, ct in w.out.values()}
    assert len(ciphertexts) == 4  # one independent session per device
    for d in (bob1, bob2, bob3, alice2):
        assert await w.open(d) == pt.Text("to all of you")
    # Each device can answer in its own session, and everyone's sessions stay independent.
    r = await send(bob2, pt.Text("bob2 here"), [alice1, alice2, bob1, bob3])
    for d in (alice1, alice2, bob1, bob3):
        assert await r.open(d) == pt.Text("bob2 here")
    assert alice1.known_devices("users/bob") == sorted([bob1.device, bob2.device,
                                                         bob3.device])
    assert alice1.known_devices("users/alice") == [alice2.device]


async def test_a_device_only_opens_its_own_envelope():
    alice, bob1, bob2 = device("alice"), device("bob", 1), device("bob", 2)
    w = await send(alice, pt.Text("x"), [bob1, bob2])
    _, for_bob1 = w.out[bob1.device]
    with pytest.raises(Exception):  # noqa: B017 -- any failure: it is not bob2's envelope
        await bob2.decrypt_from(alice.device, True, for_bob1, w.context())
    assert await w.open(bob2) == pt.Text("x")


async def test_forgotten_device_gets_no_envelope_and_cannot_rejoin_with_another_key():
    alice, bob1, bob2 = device("alice"), device("bob", 1), device("bob", 2)
    await (await send(alice, pt.Text("x"), [bob1, bob2])).open(bob2)
    alice.forget_device(bob2.device)  # revoked
    assert alice.known_devices("users/bob") == [bob1.device]
    assert alice.identities[bob2.device] == bob2.identity_key
