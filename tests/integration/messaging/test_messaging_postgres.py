"""The messaging service over real gRPC with PostgreSQL storage (backends.storage =
"postgres"; auth on PostgreSQL too).

The store-touching cases of test_delivery.py and test_groups_and_lifecycle.py run again
here against this module's `mesh` fixture (imported test functions use the fixtures of the
module they are collected in), then what only a shared database can show: two replicas of
the service on one database, sharing Redis for pub/sub and the cache as deployed, a message
sent through one reaching a Subscribe stream on the other."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import uuid

import asyncpg
import pytest

from services.runtime.backends import build_backends
from services.runtime.config import Settings
from tests.integration.messaging.conftest import (
    TOPICS,
    Device,
    Inbox,
    direct,
    messaging_test_settings,
    new_user,
)
from tests.integration.messaging.test_delivery import (  # noqa: F401  (collected here too)
    test_concurrent_sends_get_gapless_sequences,
    test_create_direct_rules,
    test_cursor_validation,
    test_delivered_receipts_one_per_sender_and_conversation,
    test_device_mismatch_then_success_with_same_id,
    test_get_message_digests_recompute_the_content_hash,
    test_inbox_replay_ack_and_resume_without_loss_or_duplicates,
    test_list_conversations_most_recent_first_with_pages,
    test_list_messages_ranges_orders_and_pages,
    test_mark_read_syncs_devices_and_tells_senders,
    test_retried_send_is_not_duplicated,
    test_stale_device_cache_never_wrongly_rejects,
    test_two_users_two_devices_exchange_envelopes,
)
from tests.integration.messaging.test_groups_and_lifecycle import (  # noqa: F401
    internal,
    restart_loses_no_pending_entry,
    test_delete_message_leaves_a_tombstone_everywhere,
    test_disappearing_messages_expire_to_tombstones,
    test_group_lifecycle_sender_keys_and_removal,
    test_internal_membership_and_peer_checks,
    test_new_member_does_not_get_earlier_group_ciphertext,
    test_non_members_and_foreign_devices_are_refused,
    test_sender_key_only_in_groups_and_update_conversation_rules,
    test_stream_is_replaced_keeps_alive_and_ends_on_revocation,
)
from tests.support.mesh import start_mesh
from tests.support.postgres import on_postgres, temporary_database
from zynk.messaging.v1 import messaging_pb2 as pb

pytestmark = pytest.mark.timeout(90)


def postgres_settings(data_dir: pathlib.Path, url: str, **messaging) -> Settings:
    return on_postgres(messaging_test_settings(data_dir, **messaging), url)


@pytest.fixture(scope="module")
async def mesh(tmp_path_factory, postgres_url):
    m = await start_mesh(postgres_settings(tmp_path_factory.mktemp("msg-pg"), postgres_url),
                         ["auth", "messaging"], collect_topics=TOPICS)
    yield m
    await m.stop()


async def test_messages_land_in_the_messaging_schema(mesh, postgres_url):
    a1, = await new_user(mesh)
    b1, = await new_user(mesh)
    conv = await direct(a1, b1)
    sent = await a1.send(conv, [b1.name])
    conn = await asyncpg.connect(postgres_url)
    try:
        stored = await conn.fetchrow(
            "SELECT m.sequence, m.tableoid::regclass::text AS part FROM messaging.message_ids i"
            " JOIN messaging.messages m ON m.conversation_id = i.conversation_id"
            " AND m.sequence = i.sequence AND m.create_time = i.create_time WHERE i.id = $1",
            sent.name.rsplit("/", 1)[1])
    finally:
        await conn.close()
    assert stored["sequence"] == sent.sequence
    assert stored["part"].startswith("messaging.messages_")  # a monthly partition
    assert not mesh.settings.db_path("messaging").exists()  # nothing went to SQLite
    health = mesh.servers["messaging"]
    assert "postgres" in health.spec.health_checks


async def test_restart_loses_no_pending_entry_on_postgres(tmp_path):
    with temporary_database() as url:
        await restart_loses_no_pending_entry(postgres_settings(tmp_path, url))


# -- two replicas on one database ----------------------------------------------------------


@contextlib.asynccontextmanager
async def two_replicas(settings: Settings):
    """Process 1: auth + messaging; process 2: another messaging. Each process has its own
    runtime backends on the shared Redis (pub/sub, cache, revocations, rate limits), as
    `zynk serve` builds them; the event bus stays per process (in memory)."""
    first = await start_mesh(settings, ["auth", "messaging"],
                             backends=await build_backends(settings))
    try:
        second = await start_mesh(settings, ["messaging"],
                                  backends=await build_backends(settings),
                                  peers=first.addresses)
        try:
            yield first, second
        finally:
            await second.stop()
    finally:
        await first.stop()


def on(device: Device, mesh) -> Device:
    """The same device (same token) talking to another replica."""
    return Device(device.user, device.name, device.token, mesh)


@pytest.fixture
def replica_settings(backend_settings, tmp_path):
    with temporary_database() as url:
        # No keepalive tick during a test: entries reach a stream through pub/sub only
        # (a tick would re-read the store and hide a wake-up that never came).
        settings = postgres_settings(tmp_path, url, keepalive_s=60)
        settings.backends = backend_settings(cache="redis").backends.model_copy(
            update={"storage": "postgres", "database_url": url})
        yield settings


async def test_a_message_sent_through_one_replica_reaches_a_stream_on_the_other(
        replica_settings):
    async with two_replicas(replica_settings) as (a, b):
        alice, alice2 = await new_user(a, 2)
        bob, = await new_user(a)
        conv = await direct(alice, on(bob, b))
        # Bob listens on replica B, alice's second device on replica A.
        bob_box = Inbox(on(bob, b))
        alice2_box = Inbox(alice2)
        await asyncio.wait_for(bob_box.caught_up.wait(), 5)
        await asyncio.wait_for(alice2_box.caught_up.wait(), 5)

        # Through replica A only: what bob's stream on B gets, it gets over Redis pub/sub
        # (its keepalive, which would re-read the store, is a minute away).
        first = [await alice.send(conv, [alice2.name, bob.name]) for _ in range(5)]
        await bob_box.wait_entries(6, timeout=5)

        # Then alice's devices send at once, one through each replica.
        async def burst(sender: Device, others: list[str]) -> list[pb.Message]:
            sent = []
            for _ in range(4):
                sent += await asyncio.gather(*[sender.send(conv, others) for _ in range(5)])
            return sent

        through_a, through_b = await asyncio.gather(
            burst(alice, [alice2.name, bob.name]), burst(on(alice2, b), [alice.name, bob.name]))
        first += through_a
        sent = first + through_b
        assert sorted(m.sequence for m in sent) == list(range(2, 47))  # gapless across both

        entries = await bob_box.wait_entries(46, timeout=10)
        got = [e.message.name for e in entries]
        assert len(got) == len(set(got)) == 46  # no loss, no duplicate
        assert [e.message.sequence for e in entries] == list(range(1, 47))  # in order
        assert {m.name for m in sent} <= set(got)
        # Alice's second device (on A) gets what alice sent through A and nothing twice.
        mine = await alice2_box.wait_entries(26, timeout=10)
        assert [e.message.name for e in mine[1:]] == [m.name for m in
                                                     sorted(first, key=lambda m: m.sequence)]

        # Bob acknowledges through replica A: the stream on B is unaffected, the inbox
        # state is one; alice's devices hear DELIVERED, on whichever replica they listen.
        assert await on(bob, a).ack(entries[-1].cursor) == 0
        receipts = await alice2_box.wait_entries(27, timeout=10)
        assert receipts[-1].receipt.type == pb.RECEIPT_TYPE_DELIVERED
        await bob_box.close()
        await alice2_box.close()


async def test_replicas_create_one_direct_conversation_per_pair(replica_settings):
    async with two_replicas(replica_settings) as (a, b):
        alice, = await new_user(a)
        bob, = await new_user(a)
        names = await asyncio.gather(*[direct(on(alice, (a, b)[i % 2]), bob)
                                       for i in range(6)],
                                     *[direct(on(bob, (a, b)[i % 2]), alice)
                                       for i in range(6)])
        assert len(set(names)) == 1
        listed = await on(bob, b).call("ListConversations", pb.ListConversationsRequest())
        assert [c.name for c in listed.conversations] == [names[0]]


async def test_a_retry_on_the_other_replica_is_not_duplicated(replica_settings):
    async with two_replicas(replica_settings) as (a, b):
        alice, = await new_user(a)
        bob, = await new_user(a)
        conv = await direct(alice, bob)
        mid = str(uuid.uuid4())
        outs = await asyncio.gather(*[on(alice, (a, b)[i % 2]).send(conv, [bob.name],
                                                                    message_id=mid)
                                      for i in range(8)])
        assert len({(m.name, m.sequence) for m in outs}) == 1
        box = Inbox(on(bob, b))
        await asyncio.wait_for(box.caught_up.wait(), 5)
        assert [e.message.name for e in box.entries()][1:] == [outs[0].name]
        await box.close()


async def test_a_group_change_sent_to_both_replicas_applies_once(replica_settings):
    async with two_replicas(replica_settings) as (a, b):
        owner, = await new_user(a)
        ann, = await new_user(a)
        group_id = str(uuid.uuid4())
        change = pb.ApplyGroupMembershipChangeRequest(
            group=f"groups/{group_id}", change_id=str(uuid.uuid4()), actor=owner.user,
            added_users=[owner.user, ann.user], admins=[owner.user])
        stubs = [internal(a), internal(b)]
        outs = await asyncio.gather(*[stubs[i % 2].ApplyGroupMembershipChange(change)
                                      for i in range(6)])
        assert {(o.conversation, o.sequence) for o in outs} == {(f"conversations/{group_id}", 1)}
        box = Inbox(on(ann, b))
        await asyncio.wait_for(box.caught_up.wait(), 5)
        [created] = box.entries()
        assert created.message.system_event.type == pb.SystemEvent.TYPE_CONVERSATION_CREATED
        await box.close()
