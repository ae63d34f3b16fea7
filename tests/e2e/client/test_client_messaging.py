"""End-to-end messaging through the SDK: direct and group messages, fan-out to every device,
DEVICE_MISMATCH recovery, idempotent retries, the realtime WebSocket and the CLI.

Each test first checks the server serves what it needs and FAILS (never skips) if it answers
UNIMPLEMENTED: these services are built, so their absence is a regression."""

import asyncio
import contextlib

import pytest

from clients import cli
from clients.sdk import errors as E
from clients.sdk import plaintext as pt
from clients.sdk.client import ZynkClient
from clients.sdk.state import OutboxEntry
from tests.e2e.client.conftest import FAST_KDF, PASSWORD, unique

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
async def served(mesh, tmp_path_factory) -> dict[str, bool]:
    """Which of the services these tests need the server offers (asked once)."""
    name = unique("probe")
    await ZynkClient.register(mesh.gateway_url, name, PASSWORD)
    probe = await ZynkClient.login(tmp_path_factory.mktemp("probe"), "p", "pw",
                                   mesh.gateway_url, name, PASSWORD, "probe", FAST_KDF)
    out = {}
    async with probe:
        for what, call in (("messaging", probe.transport.list_conversations),
                           ("groups", probe.transport.list_groups)):
            try:
                await call()
                out[what] = True
            except E.Unimplemented:
                out[what] = False
    return out


@pytest.fixture
def messaging(served):
    assert served["messaging"], "MessagingService answers UNIMPLEMENTED"


@pytest.fixture
def groups(messaging, served):
    assert served["groups"], "GroupService answers UNIMPLEMENTED"


async def receive(client, mode: str = "rest") -> list:
    """Catch up on the inbox; -> the events about messages (not receipts or system events
    such as "alice started the conversation")."""
    events = []

    async def collect(evs):
        events.extend(e for e in evs
                      if e.kind not in ("caught_up", "receipt", "delivered", "read", "system"))

    await asyncio.wait_for(client.listen(collect, follow=False, mode=mode), 30)
    return events


def texts(events) -> list[str]:
    return [e.text for e in events if e.kind == "message"]


async def test_direct_messages_both_ways_once_each(messaging, make_client):
    alice, bob = await make_client("alice"), await make_client("bob")
    mid = await alice.send_text(bob.state.username, "hello bob")
    events = await receive(bob)
    assert [(e.kind, e.sender, e.text, e.message_id) for e in events] == \
        [("message", alice.state.username, "hello bob", mid)]
    assert await receive(bob) == []  # acknowledged: never shown twice
    await bob.send_text(alice.state.username, "hi alice")
    assert texts(await receive(alice)) == ["hi alice"]
    await alice.send_text(bob.state.username, "second")
    assert texts(await receive(bob)) == ["second"]


async def test_the_senders_other_devices_get_a_copy(messaging, make_client):
    alice1 = await make_client("alice")
    alice2 = await make_client(username=alice1.state.username, device="phone")
    bob = await make_client("bob")
    await alice1.send_text(bob.state.username, "from my laptop")
    [copy] = [e for e in await receive(alice2) if e.kind == "message"]
    assert copy.outgoing and copy.text == "from my laptop"
    assert texts(await receive(bob)) == ["from my laptop"]


async def test_device_mismatch_claims_new_devices_and_drops_revoked_ones(messaging,
                                                                         make_client):
    alice, bob1 = await make_client("alice"), await make_client("bob")
    await alice.send_text(bob1.state.username, "one")
    bob2 = await make_client(username=bob1.state.username, device="tablet")
    await alice.send_text(bob1.state.username, "two")  # server: bob2 missing -> retried
    assert texts(await receive(bob2)) == ["two"]
    assert texts(await receive(bob1)) == ["one", "two"]
    await bob1.revoke_device(bob2.device)
    await alice.send_text(bob1.state.username, "three")  # server: bob2 extra -> dropped
    assert texts(await receive(bob1)) == ["three"]


async def test_a_retried_send_is_stored_once(messaging, make_client):
    alice, bob = await make_client("alice"), await make_client("bob")
    conv = await alice.resolve(bob.state.username)
    entry = OutboxEntry("4c1f0000-0000-4000-8000-000000000001", conv.name, "pairwise",
                        pt.encode(pt.Text("only once")), list(conv.participants))
    first = await alice._deliver(entry)
    again = await alice._deliver(entry)  # the answer was "lost": same id, same envelopes
    assert (again.name, again.sequence) == (first.name, first.sequence)
    assert texts(await receive(bob)) == ["only once"]


async def test_edit_react_delete(messaging, make_client):
    alice, bob = await make_client("alice"), await make_client("bob")
    mid = await alice.send_text(bob.state.username, "helo")
    await alice.edit(bob.state.username, mid, "hello")
    assert [e.kind for e in await receive(bob)] == ["message", "edit"]
    conv = (await bob.resolve(alice.state.username)).name
    assert bob.state.find_history(conv, mid)["text"] == "hello"
    await bob.react(alice.state.username, mid, "👍")
    [reaction] = await receive(alice)
    assert reaction.kind == "reaction" and "👍" in reaction.text
    assert alice.state.find_history(conv, mid)["reactions"] == {bob.user: "👍"}
    await alice.delete_for_everyone(bob.state.username, mid)
    await receive(bob)
    assert bob.state.find_history(conv, mid)["deleted"]


async def test_group_messages_and_removal_locks_the_member_out(groups, make_client):
    alice, bob, carol = (await make_client("alice"), await make_client("bob"),
                         await make_client("carol"))
    group = await alice.create_group("team", [bob.state.username, carol.state.username])
    await alice.send_text(group.name, "hello team")
    assert "hello team" in texts(await receive(bob))
    assert "hello team" in texts(await receive(carol))
    await bob.send_text(group.name, "hi all")
    assert "hi all" in texts(await receive(carol))
    assert "hi all" in texts(await receive(alice))
    await alice.remove_members(group.name, [carol.state.username])
    await receive(bob)
    await alice.send_text(group.name, "carol is gone")
    assert "carol is gone" in texts(await receive(bob))
    assert "carol is gone" not in texts(await receive(carol))
    await bob.send_text(group.name, "bob rotated too")  # bob saw MEMBERS_REMOVED
    assert "bob rotated too" in texts(await receive(alice))
    assert "bob rotated too" not in texts(await receive(carol))


async def test_groups_invite_and_join(groups, make_client):
    alice, dave = await make_client("alice"), await make_client("dave")
    group = await alice.create_group("open")
    invite = await alice.invite(group.name)
    joined = await dave.join(invite.token)
    assert joined.name == group.name
    await alice.send_text(group.name, "welcome dave")
    assert "welcome dave" in texts(await receive(dave))


async def test_realtime_websocket_delivers_live(messaging, make_client):
    alice, bob = await make_client("alice"), await make_client("bob")
    probe = bob.inbox("websocket")
    with contextlib.suppress(TimeoutError):  # E.Unimplemented (no socket) fails the test
        await asyncio.wait_for(anext(aiter(probe.batches())), 5)
    got: asyncio.Queue = asyncio.Queue()

    async def collect(evs):
        for e in evs:
            if e.kind == "message":
                await got.put(e)

    task = asyncio.create_task(bob.listen(collect, follow=True, mode="websocket"))
    try:
        await asyncio.sleep(0.5)
        await alice.send_text(bob.state.username, "live!")
        event = await asyncio.wait_for(got.get(), 15)
        assert event.text == "live!"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await receive(bob) == []  # acknowledged over the socket


async def test_cli_send_and_listen(messaging, make_client, server, tmp_path, capsys):
    alice, bob = await make_client("alice"), await make_client("bob")
    a_name, b_name = alice.profile.path.name, bob.profile.path.name
    await alice.close()
    await bob.close()
    env = {"ZYNK_SERVER": server, "ZYNK_HOME": str(tmp_path), "ZYNK_PASSWORD": PASSWORD,
           "ZYNK_PASSPHRASE": "profile passphrase"}
    rc = await asyncio.to_thread(cli.main, ["--profile", a_name, "send", bob.state.username,
                                            "hi", "from", "the", "cli"], env)
    assert rc == 0
    capsys.readouterr()
    rc = await asyncio.to_thread(cli.main, ["--profile", b_name, "listen", "--once"], env)
    out = capsys.readouterr().out
    assert rc == 0 and f"{alice.state.username}: hi from the cli" in out
