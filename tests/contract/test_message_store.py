"""The message store contract: one suite, run against every adapter (sqlite now; the
PostgreSQL adapter joins the `adapter` fixture's params)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
from google.protobuf import wrappers_pb2

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

T0 = 1_800_000_000.0


@dataclasses.dataclass
class Adapter:
    store: MessageStore
    events: Callable[[], Awaitable[list[tuple[str, str]]]]  # (event id, topic) in the outbox
    reopen: Callable[[], Awaitable[MessageStore]]  # close, then open the same data again


@pytest.fixture(params=["sqlite"])
async def adapter(request, tmp_path):
    path = tmp_path / "messaging.sqlite3"
    box = Adapter(await SqliteMessageStore.open(path), None, None)  # type: ignore[arg-type]

    async def events():
        rows = await box.store.db.fetchall("SELECT event_id, topic FROM outbox ORDER BY seq")
        return [tuple(r) for r in rows]

    async def reopen():
        await box.store.close()
        box.store = await SqliteMessageStore.open(path)
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
