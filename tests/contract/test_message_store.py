"""The message store contract: one suite, run against every adapter (SQLite, PostgreSQL).

The PostgreSQL cases run on a fresh schema each, with the monthly partitions of the months
the tests write in (T0's and the current one). The cases at the end are the races only a
shared database has: several stores ("replicas") on one schema, writing at once."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
from google.protobuf import wrappers_pb2

from services.messaging.postgres import MIGRATIONS as PG_MIGRATIONS
from services.messaging.postgres import PARTITIONED, PostgresMessageStore
from services.messaging.postgres import _queue as pg_queue
from services.messaging.sqlite import SqliteMessageStore
from services.messaging.store import (
    Acknowledged,
    Appended,
    Changed,
    ConversationType,
    ConversationWrite,
    CursorAhead,
    EntryKind,
    EnvelopeRow,
    Existing,
    Fanout,
    MessageKind,
    MessageStore,
    NewEntry,
    NewMessage,
    NotMember,
    OutboxEvent,
    ReadMarked,
    Recipient,
    SequenceAhead,
    Stale,
    StepKind,
    SystemStep,
)
from services.runtime.errors import Unavailable
from services.runtime.partitions import ensure_monthly_partitions
from tests.support.postgres import open_test_database

pytestmark = pytest.mark.timeout(60)

T0 = 1_800_000_000.0


@dataclasses.dataclass
class Adapter:
    store: MessageStore
    events: Callable[[], Awaitable[list[tuple[str, str]]]]  # (event id, topic) in the outbox
    reopen: Callable[[], Awaitable[MessageStore]]  # close, then open the same data again


async def open_postgres(url: str, schema: str, **settings) -> PostgresMessageStore:
    store = PostgresMessageStore(await open_test_database(url, [PG_MIGRATIONS], schema=schema,
                                                          **settings))
    for day in (dt.datetime.fromtimestamp(T0, dt.UTC).date(), None):
        for table in PARTITIONED:
            await ensure_monthly_partitions(store.db, table, unit="epoch_s", today=day,
                                            months_ahead=1, months_behind=1)
    return store


@pytest.fixture(params=["sqlite", "postgres"])
async def adapter(request, tmp_path):
    if request.param == "sqlite":
        path = tmp_path / "messaging.sqlite3"

        async def open_store():
            return await SqliteMessageStore.open(path)

        async def outbox_rows():
            return await box.store.db.fetchall("SELECT event_id, topic FROM outbox ORDER BY seq")
    else:
        url = request.getfixturevalue("postgres_url")  # here, so sqlite runs without a server
        schema = f"messaging_{uuid.uuid4().hex[:12]}"

        async def open_store():
            return await open_postgres(url, schema)

        async def outbox_rows():
            return await box.store.db.fetch("SELECT event_id, topic FROM outbox ORDER BY seq")

    box = Adapter(await open_store(), None, None)  # type: ignore[arg-type]

    async def events():
        return [tuple(r) for r in await outbox_rows()]

    async def reopen():
        await box.store.close()
        box.store = await open_store()
        return box.store

    box.events, box.reopen = events, reopen
    yield box
    await box.store.close()


def uid() -> str:
    return str(uuid.uuid4())


@dataclasses.dataclass
class Dev:
    user: str
    device: str

    @property
    def recipient(self) -> Recipient:
        return Recipient(self.user, self.device)


def dev(user: str | None = None) -> Dev:
    return Dev(user or uid(), uid())


def step(kind: StepKind, users=(), deliveries=()) -> SystemStep:
    return SystemStep(kind, uid(), b"", list(users), list(deliveries))


async def create(store: MessageStore, *devs: Dev, group: bool = False, now: float = T0,
                 change_id: str = "") -> Changed:
    users = sorted({d.user for d in devs})
    out = await store.change_conversation(ConversationWrite(
        conversation_id=uid(), expected_version=0,
        steps=[step(StepKind.CREATE, users, [d.recipient for d in devs])], now=now,
        change_id=change_id,
        type=ConversationType.GROUP if group else ConversationType.DIRECT,
        direct_users=() if group else tuple(users)))
    assert isinstance(out, Changed)
    return out


def message(conv: str, sender: Dev, *to: Dev, mid: str | None = None,
            body: bytes = b"ct") -> NewMessage:
    envs = [EnvelopeRow(d.user, d.device, 2, body, b"h" * 32) for d in to]
    return NewMessage(mid or uid(), conv, MessageKind.PAIRWISE, sender.user, sender.device,
                      b"c" * 32, envs, None, len(body) * len(to))


def sent_event(row) -> list[OutboxEvent]:
    return [OutboxEvent("messages.sent", row.conversation_id,
                        wrappers_pb2.StringValue(value=row.id), uid())]


async def append(store: MessageStore, version: int, msg: NewMessage, *to: Dev,
                 now: float = T0):
    return await store.append_message(msg, expected_version=version,
                                      deliveries=[d.recipient for d in to], now=now,
                                      events=sent_event)


def no_fanout(*_args) -> Fanout:
    return Fanout()


# -- conversations ---------------------------------------------------------------------------


async def test_create_records_members_and_a_first_entry(adapter):
    a, b = dev(), dev()
    out = await create(adapter.store, a, b)
    assert out.sequence == 1 and not out.replayed
    assert set(out.state.members) == {a.user, b.user}
    assert all(m.joined_sequence == 1 for m in out.state.members.values())
    assert {q.entry.device_id for q in out.queued} == {a.device, b.device}
    assert all(q.seq == 1 for q in out.queued)
    row = out.state.row
    assert row.type is ConversationType.DIRECT and row.last_sequence == 1
    assert row.direct_users == tuple(sorted((a.user, b.user)))
    assert await adapter.store.find_direct(b.user, a.user) == row


async def test_one_direct_conversation_per_pair(adapter):
    a, b = dev(), dev()
    await create(adapter.store, a, b)
    again = await adapter.store.change_conversation(ConversationWrite(
        uid(), 0, [step(StepKind.CREATE, [a.user, b.user])], T0,
        type=ConversationType.DIRECT, direct_users=(b.user, a.user)))
    assert isinstance(again, Stale)


async def test_group_changes_are_idempotent_and_versioned(adapter):
    s = adapter.store
    a, b, c = dev(), dev(), dev()
    change = uid()
    made = await create(s, a, b, group=True, change_id=change)
    gid = made.state.row.id
    replay = await s.change_conversation(ConversationWrite(gid, 0, [step(StepKind.CREATE)],
                                                           T0, change_id=change))
    assert isinstance(replay, Changed) and replay.replayed and replay.sequence == 1
    assert await s.group_change(change) == (gid, 1)
    stale = await s.change_conversation(ConversationWrite(
        gid, made.state.row.version + 5, [step(StepKind.ADD, [c.user])], T0 + 1))
    assert isinstance(stale, Stale)
    add = await s.change_conversation(ConversationWrite(
        gid, made.state.row.version, [step(StepKind.ADD, [c.user], [c.recipient]),
                                      step(StepKind.REMOVE, [b.user], [b.recipient])],
        T0 + 1, change_id=uid(), admins=frozenset({a.user, c.user})))
    assert isinstance(add, Changed) and add.sequence == 3
    members = add.state.members
    assert set(members) == {a.user, c.user}
    assert members[c.user].joined_sequence == 2 and members[c.user].admin
    assert members[a.user].admin
    assert add.state.row.version > made.state.row.version
    roles = await s.change_conversation(ConversationWrite(
        gid, add.state.row.version, [], T0 + 2, change_id=uid(), admins=frozenset({a.user})))
    assert isinstance(roles, Changed) and roles.sequence == 0
    assert not roles.state.members[c.user].admin
    closed = await s.change_conversation(ConversationWrite(
        gid, roles.state.row.version, [step(StepKind.CLOSE)], T0 + 3))
    assert closed.state.row.closed and closed.sequence == 4


async def test_settings_change_moves_the_etag_version(adapter):
    a, b = dev(), dev()
    made = await create(adapter.store, a, b)
    row = made.state.row
    out = await adapter.store.change_conversation(ConversationWrite(
        row.id, row.version, [step(StepKind.SETTINGS)], T0 + 1, message_ttl_s=30.0))
    assert out.state.row.message_ttl_s == 30.0
    assert out.state.row.settings_version == row.settings_version + 1


async def test_list_conversations_by_activity_with_keyset(adapter):
    s = adapter.store
    me = dev()
    convs = [(await create(s, me, dev(), now=T0 + i)).state.row for i in range(5)]
    got = await s.list_conversations(me.user, None, 3)
    assert [r.id for r, _ in got] == [c.id for c in reversed(convs)][:3]
    last = got[-1][0]
    rest = await s.list_conversations(me.user, (last.last_activity_time, last.id), 10)
    assert [r.id for r, _ in rest] == [convs[1].id, convs[0].id]


async def test_peers_share_an_open_conversation(adapter):
    s = adapter.store
    me, friend, stranger, grouped = dev(), dev(), dev(), dev()
    await create(s, me, friend)
    g = await create(s, me, grouped, group=True)
    assert await s.conversation_peers(me.user, [stranger.user, friend.user, grouped.user]) == {
        friend.user, grouped.user}
    await s.change_conversation(ConversationWrite(g.state.row.id, g.state.row.version,
                                                  [step(StepKind.CLOSE)], T0))
    assert await s.conversation_peers(me.user, [grouped.user]) == set()


# -- messages --------------------------------------------------------------------------------


async def test_append_allocates_the_next_sequence_and_queues(adapter):
    s = adapter.store
    a, b = dev(), dev()
    conv = (await create(s, a, b)).state.row
    out = await append(s, conv.version, message(conv.id, a, b), b, now=T0 + 5)
    assert isinstance(out, Appended)
    assert out.row.sequence == 2 and out.row.create_time == T0 + 5
    assert [(q.seq, q.entry.device_id, q.entry.kind) for q in out.queued] == [
        (2, b.device, EntryKind.MESSAGE)]
    got = await s.get_conversation(conv.id, b.user)
    assert got[0].last_sequence == 2 and got[0].last_activity_time == T0 + 5
    assert [e for e in await adapter.events()][-1][1] == "messages.sent"
    [env] = await s.get_envelopes(conv.id, 2, b.device)
    assert env.ciphertext == b"ct"
    assert await s.get_envelopes(conv.id, 2, a.device) == []


async def test_existing_id_and_stale_version_write_nothing(adapter):
    s = adapter.store
    a, b = dev(), dev()
    conv = (await create(s, a, b)).state.row
    msg = message(conv.id, a, b)
    first = await append(s, conv.version, msg, b)
    events = await adapter.events()
    again = await append(s, conv.version, msg, b)
    assert isinstance(again, Existing) and again.row == first.row
    stale = await append(s, conv.version + 1, message(conv.id, a, b), b)
    assert isinstance(stale, Stale)
    assert await adapter.events() == events
    assert (await s.inbox_state(b.device)).last_seq == 2


async def test_closed_conversations_take_no_messages(adapter):
    s = adapter.store
    a, b = dev(), dev()
    made = await create(s, a, b, group=True)
    row = made.state.row
    closed = await s.change_conversation(ConversationWrite(row.id, row.version,
                                                           [step(StepKind.CLOSE)], T0))
    out = await append(s, closed.state.row.version, message(row.id, a, b), b)
    assert isinstance(out, Stale)


async def test_concurrent_appends_are_gapless_in_commit_order(adapter):
    s = adapter.store
    a, b = dev(), dev()
    conv = (await create(s, a, b)).state.row
    outs = await asyncio.gather(*[append(s, conv.version, message(conv.id, a, b), b)
                                  for _ in range(50)])
    assert sorted(o.row.sequence for o in outs) == list(range(2, 52))
    items = await s.read_inbox(b.device, 0, 100)
    assert [i.seq for i in items] == list(range(1, 52))
    assert [i.message.sequence for i in items] == list(range(1, 52))  # inbox order = sequence


async def test_ttl_sets_expire_time_and_expiry_erases(adapter):
    s = adapter.store
    a, b = dev(), dev()
    row = (await create(s, a, b)).state.row
    ttl = await s.change_conversation(ConversationWrite(row.id, row.version,
                                                        [step(StepKind.SETTINGS)], T0,
                                                        message_ttl_s=10.0))
    out = await append(s, ttl.state.row.version, message(row.id, a, b), b, now=T0 + 1)
    assert out.row.expire_time == T0 + 11
    assert await s.expire_due(T0 + 10, 100) == 0
    assert await s.expire_due(T0 + 11, 100) == 1
    gone = await s.get_message(out.row.id)
    assert gone.delete_time == T0 + 11 and gone.erased(T0)
    assert await s.get_envelopes(row.id, out.row.sequence, None) == []


async def test_delete_erases_history_and_queued_copies(adapter):
    s = adapter.store
    a, b = dev(), dev()
    row = (await create(s, a, b)).state.row
    out = await append(s, row.version, message(row.id, a, b), b)
    tomb = await s.delete_message(out.row.id, T0 + 9)
    assert tomb.delete_time == T0 + 9 and tomb.sequence == out.row.sequence
    assert (await s.delete_message(out.row.id, T0 + 20)).delete_time == T0 + 9
    [_, item] = await s.read_inbox(b.device, 0, 10)
    assert item.message.delete_time == T0 + 9 and item.envelope is None
    [(listed, env)] = await s.list_messages(row.id, b.device, min_sequence=2, max_sequence=2,
                                            descending=False, limit=5)
    assert listed.delete_time == T0 + 9 and env is None
    assert await s.delete_message(uid(), T0) is None


async def test_list_messages_ranges_and_device_view(adapter):
    s = adapter.store
    a, b, c = dev(), dev(), dev()
    row = (await create(s, a, b, c, group=True)).state.row
    for i in range(4):
        to = (b, c) if i % 2 == 0 else (b,)
        await append(s, row.version, message(row.id, a, *to), *to)
    got = await s.list_messages(row.id, c.device, min_sequence=2, max_sequence=4,
                                descending=True, limit=10)
    assert [m.sequence for m, _ in got] == [4, 3, 2]
    assert [env is not None for _, env in got] == [True, False, True]
    assert await s.list_messages(row.id, c.device, min_sequence=1, max_sequence=99,
                                 descending=False, limit=2) == (await s.list_messages(
        row.id, c.device, min_sequence=1, max_sequence=2, descending=False, limit=10))


# -- inbox -----------------------------------------------------------------------------------


async def test_acknowledge_removes_and_reports_first_deliveries(adapter):
    s = adapter.store
    a, b1 = dev(), dev()
    b2 = dev(b1.user)
    row = (await create(s, a, b1, b2)).state.row
    sent = [await append(s, row.version, message(row.id, a, b1, b2), b1, b2)
            for _ in range(3)]
    seen: list = []

    def plan(delivered, devices_of):
        seen.append(list(delivered))
        return Fanout([NewEntry(a.user, a.device, EntryKind.RECEIPT, row.id, payload=b"r")],
                      [OutboxEvent("messages.delivered", row.id,
                                   wrappers_pb2.StringValue(value="d"), uid())])

    assert isinstance(await s.acknowledge(b1.user, b1.device, 9, T0, plan), CursorAhead)
    out = await s.acknowledge(b1.user, b1.device, 3, T0 + 1, plan)
    assert isinstance(out, Acknowledged) and out.pending == 1
    assert [d.message_id for d in seen[0]] == [m.row.id for m in sent[:2]]
    assert seen[0][0].sender_user == a.user and seen[0][0].sequence == 2
    assert [(q.seq, q.entry.device_id) for q in out.queued] == [(2, a.device)]
    assert [i.seq for i in await s.read_inbox(b1.device, 0, 10)] == [4]
    # the same messages acknowledged on the user's other device are not "first" any more
    again = await s.acknowledge(b2.user, b2.device, 4, T0 + 2, plan)
    assert again.pending == 0
    assert [d.message_id for d in seen[1]] == [sent[2].row.id]
    # acknowledging an older position changes nothing
    assert not (await s.acknowledge(b1.user, b1.device, 2, T0, plan)).queued
    [r] = await s.list_receipts(row.id, sent[0].row.sequence, "", 10)
    assert (r.user_id, r.deliver_time, r.read_time) == (b1.user, T0 + 1, None)
    state = await s.inbox_state(b1.device)
    assert (state.last_seq, state.acked_seq, state.pending) == (4, 3, 1)


async def test_concurrent_acknowledgements_of_many_devices(adapter):
    s = adapter.store
    a = dev()
    bs = [dev() for _ in range(10)]
    row = (await create(s, a, *bs, group=True)).state.row
    for _ in range(3):
        await append(s, row.version, message(row.id, a, *bs), *bs)
    outs = await asyncio.gather(*[s.acknowledge(b.user, b.device, 2 + (i % 3), T0,
                                                lambda d, _: Fanout())
                                  for i, b in enumerate(bs)])
    assert [o.pending for o in outs] == [4 - (2 + i % 3) for i in range(10)]


async def test_a_failing_planner_rolls_the_acknowledgement_back(adapter):
    s = adapter.store
    a, b = dev(), dev()
    row = (await create(s, a, b)).state.row
    await append(s, row.version, message(row.id, a, b), b)

    def broken(delivered, devices_of):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await s.acknowledge(b.user, b.device, 2, T0, broken)
    assert [i.seq for i in await s.read_inbox(b.device, 0, 10)] == [1, 2]
    assert await s.list_receipts(row.id, 2, "", 10) == []


async def test_revoked_devices_receive_nothing(adapter):
    s = adapter.store
    a, b = dev(), dev()
    row = (await create(s, a, b)).state.row
    assert await s.forget_device(b.user, b.device) == 1
    out = await append(s, row.version, message(row.id, a, b), b)
    assert out.queued == [] and await s.read_inbox(b.device, 0, 10) == []
    state = await s.inbox_state(b.device)
    assert state.revoked and state.pending == 0
    assert await s.forget_device(b.user, b.device) == 0


async def test_open_inbox_creates_it_once(adapter):
    d = dev()
    first = await adapter.store.open_inbox(d.user, d.device)
    assert (first.last_seq, first.pending, first.revoked) == (0, 0, False)
    assert await adapter.store.open_inbox(d.user, d.device) == first


async def test_mark_read(adapter):
    s = adapter.store
    a, b1 = dev(), dev()
    b2 = dev(b1.user)
    row = (await create(s, a, b1, b2)).state.row
    await append(s, row.version, message(row.id, b1, a, b2), a, b2)  # b1's own: not a receipt
    await append(s, row.version, message(row.id, a, b1, b2), b1, b2)
    calls = []

    def plan(old, new, senders, devices_of):
        calls.append((old, new, list(senders), sorted(devices_of(b1.user))))
        return Fanout([NewEntry(b1.user, b2.device, EntryKind.READ_STATE, row.id,
                                payload=b"s")])

    assert isinstance(await s.mark_read(row.id, dev().user, 1, T0, True, plan), NotMember)
    assert isinstance(await s.mark_read(row.id, b1.user, 9, T0, True, plan), SequenceAhead)
    out = await s.mark_read(row.id, b1.user, 3, T0 + 1, True, plan)
    assert isinstance(out, ReadMarked) and out.advanced and out.read_sequence == 3
    assert calls == [(0, 3, [a.user], sorted([b1.device, b2.device]))]
    assert [q.entry.device_id for q in out.queued] == [b2.device]
    back = await s.mark_read(row.id, b1.user, 2, T0 + 2, True, plan)
    assert (back.read_sequence, back.advanced, len(calls)) == (3, False, 1)
    [r] = await s.list_receipts(row.id, 3, "", 10)
    assert (r.user_id, r.read_time) == (b1.user, T0 + 1)
    assert await s.list_receipts(row.id, 2, "", 10) == []
    got = await s.get_conversation(row.id, b1.user)
    assert got[1] == 3


async def test_everything_committed_survives_a_reopen(adapter):
    s = adapter.store
    a, b = dev(), dev()
    row = (await create(s, a, b)).state.row
    await asyncio.gather(*[append(s, row.version, message(row.id, a, b), b) for _ in range(3)])
    await s.acknowledge(b.user, b.device, 2, time.time(), no_fanout)
    reopened = await adapter.reopen()
    assert [i.seq for i in await reopened.read_inbox(b.device, 0, 10)] == [3, 4]
    out = await append(reopened, row.version, message(row.id, a, b), b)
    assert out.row.sequence == 5 and out.queued[0].seq == 5
    assert len(await adapter.events()) >= 4


# -- replicas on one PostgreSQL database ------------------------------------------------------


@pytest.fixture
async def replicas(postgres_url):
    """Three stores on one schema: what three replicas of the service share."""
    schema = f"messaging_{uuid.uuid4().hex[:12]}"
    stores = [await open_postgres(postgres_url, schema, pool_max_size=8) for _ in range(3)]
    yield stores
    for s in stores:
        await s.close()


async def test_replicas_append_to_one_conversation_gaplessly(replicas):
    a, b = dev(), dev()
    conv = (await create(replicas[0], a, b)).state.row
    outs = await asyncio.gather(*[
        append(replicas[i % 3], conv.version, message(conv.id, a, b), b, now=T0 + i)
        for i in range(60)])
    assert sorted(o.row.sequence for o in outs) == list(range(2, 62))
    items = await replicas[1].read_inbox(b.device, 0, 100)
    assert [i.seq for i in items] == list(range(1, 62))
    assert [i.message.sequence for i in items] == list(range(1, 62))  # inbox order = sequence
    got = await replicas[2].get_conversation(conv.id, b.user)
    assert got[0].last_sequence == 61


async def test_replicas_store_a_retried_message_id_once(replicas):
    a, b = dev(), dev()
    conv = (await create(replicas[0], a, b)).state.row
    other = (await create(replicas[0], a, dev())).state.row
    msg = message(conv.id, a, b)
    elsewhere = dataclasses.replace(msg, conversation_id=other.id)  # same id, other place
    outs = await asyncio.gather(*[
        append(replicas[i % 3], conv.version, elsewhere if i % 4 == 3 else msg, b)
        for i in range(24)])
    appended = [o for o in outs if isinstance(o, Appended)]
    assert len(appended) == 1
    stored = appended[0].row
    assert all(isinstance(o, Existing) and o.row == stored for o in outs if o is not appended[0])
    assert await replicas[1].get_message(msg.id) == stored
    entries = [i for i in await replicas[2].read_inbox(b.device, 0, 100) if i.seq > 1]
    assert [i.message.id for i in entries] == ([msg.id] if stored.conversation_id == conv.id
                                               else [])
    sent = [t for _, t in await outbox(replicas[0]) if t == "messages.sent"]
    assert len(sent) == 1


async def outbox(store: PostgresMessageStore) -> list[tuple[str, str]]:
    return [tuple(r) for r in await store.db.fetch(
        "SELECT event_id, topic FROM outbox ORDER BY seq")]


async def test_replicas_deliver_to_one_device_gapless_in_commit_order(replicas):
    """Two replicas queue for one device at once (two conversations, so no conversation
    lock orders them); a reader polling the inbox meanwhile must only ever see a gapless
    prefix: never seq N+1 committed while N is still in flight (it would skip N)."""
    d, a, c = dev(), dev(), dev()
    one = (await create(replicas[0], d, a)).state.row
    two = (await create(replicas[1], d, c)).state.row
    done = asyncio.Event()
    seen: list[int] = []

    async def poll() -> None:
        while True:
            finished = done.is_set()
            after = seen[-1] if seen else 0
            got = [i.seq for i in await replicas[2].read_inbox(d.device, after, 1000)]
            assert got == list(range(after + 1, after + 1 + len(got))), (after, got)
            seen.extend(got)
            if finished:
                return

    async def sends(store, conv, sender) -> None:
        for _ in range(8):
            await asyncio.gather(*[append(store, conv.version, message(conv.id, sender, d), d)
                                   for _ in range(5)])

    reader = asyncio.create_task(poll())
    await asyncio.gather(sends(replicas[0], one, a), sends(replicas[1], two, c))
    done.set()
    await reader
    assert seen == list(range(1, 83))
    state = await replicas[0].inbox_state(d.device)
    assert (state.last_seq, state.pending) == (82, 82)


async def test_replicas_create_one_direct_conversation_per_pair(replicas):
    a, b = dev(), dev()
    users = tuple(sorted((a.user, b.user)))
    outs = await asyncio.gather(*[
        replicas[i % 3].change_conversation(ConversationWrite(
            uid(), 0, [step(StepKind.CREATE, users, [a.recipient, b.recipient])], T0,
            type=ConversationType.DIRECT, direct_users=users))
        for i in range(9)])
    won = [o for o in outs if isinstance(o, Changed)]
    assert len(won) == 1 and all(isinstance(o, Stale) for o in outs if o is not won[0])
    found = await replicas[2].find_direct(b.user, a.user)
    assert found == won[0].state.row
    listed = await replicas[1].list_conversations(a.user, None, 10)
    assert [r.id for r, _ in listed] == [found.id]
    assert [i.seq for i in await replicas[0].read_inbox(b.device, 0, 10)] == [1]


async def test_replicas_apply_a_group_change_once(replicas):
    a, b, c = dev(), dev(), dev()
    gid, change = uid(), uid()

    def create_change():
        return ConversationWrite(gid, 0, [step(StepKind.CREATE, [a.user, b.user],
                                               [a.recipient, b.recipient])], T0,
                                 change_id=change, type=ConversationType.GROUP)

    outs = await asyncio.gather(*[replicas[i % 3].change_conversation(create_change())
                                  for i in range(6)])
    applied = [o for o in outs if isinstance(o, Changed) and not o.replayed]
    assert len(applied) == 1
    assert all(isinstance(o, Changed) and o.replayed and o.sequence == 1
               for o in outs if o is not applied[0])
    version = applied[0].state.row.version
    add = uid()
    outs = await asyncio.gather(*[replicas[i % 3].change_conversation(ConversationWrite(
        gid, version, [step(StepKind.ADD, [c.user], [c.recipient])], T0 + 1, change_id=add))
        for i in range(6)])
    assert sum(isinstance(o, Changed) and not o.replayed for o in outs) == 1
    assert all(o.sequence == 2 for o in outs if isinstance(o, Changed))
    assert await replicas[0].group_change(add) == (gid, 2)
    state = await replicas[1].load_conversation(gid)
    assert state.row.last_sequence == 2 and set(state.members) == {a.user, b.user, c.user}


async def test_replicas_keep_read_positions_and_receipts_monotonic(replicas):
    a, b = dev(), dev()
    conv = (await create(replicas[0], a, b)).state.row
    for i in range(12):
        await append(replicas[i % 3], conv.version, message(conv.id, a, b), b, now=T0 + i)
    positions = [5, 13, 2, 9, 13, 7, 11, 3, 12, 6]
    outs = await asyncio.gather(*[
        replicas[i % 3].mark_read(conv.id, b.user, p, T0 + 100 + i, True, no_fanout)
        for i, p in enumerate(positions)])
    assert all(o.read_sequence >= p for o, p in zip(outs, positions, strict=True))
    assert sum(o.advanced for o in outs) <= len(set(positions))
    assert (await replicas[2].get_conversation(conv.id, b.user))[1] == 13
    read_times = {}
    for seq in range(2, 14):
        [r] = await replicas[0].list_receipts(conv.id, seq, "", 10)
        read_times[seq] = r.read_time
    assert None not in read_times.values()
    # A later read never moves a recorded read time.
    await replicas[1].mark_read(conv.id, b.user, 13, T0 + 999, True, no_fanout)
    for seq, t in read_times.items():
        assert (await replicas[2].list_receipts(conv.id, seq, "", 10))[0].read_time == t


async def test_replicas_acknowledging_one_device_record_each_delivery_once(replicas):
    a, b = dev(), dev()
    conv = (await create(replicas[0], a, b)).state.row
    sent = [await append(replicas[0], conv.version, message(conv.id, a, b), b, now=T0 + i)
            for i in range(20)]
    delivered: list[str] = []

    def plan(found, devices_of):
        delivered.extend(d.message_id for d in found)
        return Fanout([NewEntry(a.user, d, EntryKind.RECEIPT, conv.id, payload=b"r")
                       for d in devices_of(a.user)])

    ups = [3, 21, 8, 15, 21, 1, 12, 19, 5, 21]
    outs = await asyncio.gather(*[replicas[i % 3].acknowledge(b.user, b.device, u, T0, plan)
                                  for i, u in enumerate(ups)])
    assert all(isinstance(o, Acknowledged) for o in outs)
    assert sorted(delivered) == sorted(m.row.id for m in sent)  # each message once
    state = await replicas[1].inbox_state(b.device)
    assert (state.acked_seq, state.pending, state.last_seq) == (21, 0, 21)
    receipts = [i for i in await replicas[2].read_inbox(a.device, 0, 100)
                if i.kind is EntryKind.RECEIPT]
    assert len(receipts) == sum(bool(o.queued) for o in outs)
    assert [i.seq for i in await replicas[2].read_inbox(a.device, 0, 100)] == list(
        range(1, 2 + len(receipts)))


async def test_replicas_crossing_acknowledgements_do_not_deadlock(replicas):
    """Two users acknowledge each other's messages at once on different replicas: each
    acknowledgement deletes its own entries and queues receipts on the other's inbox. With
    locks taken in different orders this deadlocks (PostgreSQL aborts one after a second)."""
    a, b = dev(), dev()
    conv = (await create(replicas[0], a, b)).state.row
    for i in range(30):
        x, y = (a, b) if i % 2 == 0 else (b, a)
        await append(replicas[0], conv.version, message(conv.id, x, y), y, now=T0 + i)

    def plan(found, devices_of):
        return Fanout([NewEntry(d.sender_user, device, EntryKind.RECEIPT, conv.id,
                                payload=b"r")
                       for d in found for device in devices_of(d.sender_user)])

    async def drain(store, who: Dev) -> None:
        while True:
            items = await store.read_inbox(who.device, 0, 3)
            if not items:
                return
            await store.acknowledge(who.user, who.device, items[-1].seq, T0, plan)

    started = time.monotonic()
    await asyncio.gather(drain(replicas[0], a), drain(replicas[1], b),
                         drain(replicas[2], a), drain(replicas[0], b))
    assert time.monotonic() - started < 5
    # Receipts queued after a drain found its inbox empty: acknowledge those too.
    for store, who in ((replicas[1], a), (replicas[2], b)):
        await drain(store, who)
    for who in (a, b):
        state = await replicas[2].inbox_state(who.device)
        assert state.pending == 0 and state.acked_seq == state.last_seq


async def test_revoking_a_device_while_replicas_queue_for_it(replicas):
    a, b = dev(), dev()
    conv = (await create(replicas[0], a, b)).state.row

    async def sends(store) -> None:
        for _ in range(6):
            await asyncio.gather(*[append(store, conv.version, message(conv.id, a, b), b)
                                   for _ in range(5)])

    async def revoke() -> None:
        await asyncio.sleep(0.02)
        await replicas[2].forget_device(b.user, b.device)

    await asyncio.gather(sends(replicas[0]), sends(replicas[1]), revoke())
    state = await replicas[2].inbox_state(b.device)
    assert state.revoked and state.pending == 0
    assert await replicas[0].read_inbox(b.device, 0, 100) == []


async def test_revoking_a_device_waits_for_an_entry_in_flight(replicas):
    """An entry whose transaction is still open when the revocation starts is dropped too
    (the revocation waits for the inbox's allocation lock, then sweeps again)."""
    a, b = dev(), dev()
    conv = (await create(replicas[0], a, b)).state.row
    async with replicas[0].db.transaction() as tx:
        queued, _ = await pg_queue(tx, [NewEntry(b.user, b.device, EntryKind.RECEIPT, conv.id,
                                                 payload=b"r")], T0)
        assert [q.seq for q in queued] == [2]
        forget = asyncio.create_task(replicas[1].forget_device(b.user, b.device))
        await asyncio.sleep(0.3)
        assert not forget.done()
    assert await asyncio.wait_for(forget, 10) == 2
    assert await replicas[2].read_inbox(b.device, 0, 10) == []
    state = await replicas[2].inbox_state(b.device)
    assert state.revoked and state.pending == 0 and state.last_seq == 2


async def test_an_inbox_seq_in_flight_holds_back_the_next_one(replicas):
    """While one transaction holds seq N of a device's inbox uncommitted, another replica's
    entry for that device (from another conversation) waits: it must not commit N+1, which a
    reader would see first and then never go back for N."""
    d, a, c = dev(), dev(), dev()
    await create(replicas[0], d, a)
    two = (await create(replicas[1], d, c)).state.row
    async with replicas[0].db.transaction() as tx:
        queued, _ = await pg_queue(tx, [NewEntry(d.user, d.device, EntryKind.RECEIPT, two.id,
                                                 payload=b"r")], T0)
        assert [q.seq for q in queued] == [3]
        later = asyncio.create_task(append(replicas[1], two.version,
                                           message(two.id, c, d), d))
        await asyncio.sleep(0.3)
        assert not later.done()
        assert [i.seq for i in await replicas[2].read_inbox(d.device, 2, 10)] == []
    out = await asyncio.wait_for(later, 10)
    assert [q.seq for q in out.queued] == [4]
    assert [i.seq for i in await replicas[2].read_inbox(d.device, 0, 10)] == [1, 2, 3, 4]


async def test_a_month_without_a_partition_is_unavailable_and_writes_nothing(replicas):
    a, b = dev(), dev()
    conv = (await create(replicas[0], a, b)).state.row
    later = T0 + 3 * 365 * 86400  # no partition this far ahead
    with pytest.raises(Unavailable) as caught:
        await append(replicas[0], conv.version, message(conv.id, a, b), b, now=later)
    assert caught.value.reason == "PARTITION_MISSING"
    assert (await replicas[1].get_conversation(conv.id, a.user))[0].last_sequence == 1
    assert [i.seq for i in await replicas[1].read_inbox(b.device, 0, 10)] == [1]
