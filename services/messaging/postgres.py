"""PostgreSQL adapter of the message store (distributed mode), on the runtime's
PostgresDatabase. Any number of replicas share the database; READ COMMITTED throughout.

What the SQLite adapter gets from its single writer is explicit here:
- Conversation sequences: a send locks its conversation rows (`FOR NO KEY UPDATE`, in id
  order) and allocates `last_sequence + 1...` under that lock; a membership change does the
  same through its version compare-and-set (`UPDATE ... WHERE version = $expected`, which
  waits for the lock and re-checks the newest row). The lock is held until commit, so the
  next writer allocates after this one committed: gapless, in commit order. The version
  and `closed` are checked under the same lock (Stale).
- Inbox seqs: one statement per transaction allocates every device's next seqs, an
  `INSERT ... ON CONFLICT DO UPDATE SET last_seq = last_seq + n RETURNING` over the
  devices in id order (it creates missing inboxes, skips revoked ones and also moves the
  acknowledging devices' `acked_seq`/`pending`). The row lock is held until commit: a
  reader never sees seq N+1 committed while N is in flight (the Subscribe stream relies on
  it). One allocation per transaction, taken after every other lock of the transaction:
  two allocations could lock two devices in opposite orders.
- Message ids: `message_ids` (unpartitioned) holds the global primary key, and its
  `INSERT ... ON CONFLICT DO NOTHING` decides: of two concurrent sends of one id, the
  second waits for the first to commit and finds the id taken. A send batch locks its
  conversations first (a retry of the same message queues there, behind the original),
  inserts without looking ids up, and when an id turns out taken rolls back and runs again,
  looking ids up first this time (Existing).
- Direct conversations: `direct_key` is UNIQUE, so two CreateConversations for one pair
  create one (the other's insert does nothing: Stale, and the domain reads the winner).
- ApplyGroupMembershipChange: the change id is inserted into `group_changes` first; a
  concurrent application of the same id waits for it and then replays its answer.
- Receipts and read positions: MarkRead locks the member row (`FOR UPDATE`) before it
  compares; receipt times are set only where NULL (`ON CONFLICT DO UPDATE ... WHERE`), so
  the first delivery or read wins and times never move; `acked_seq` only grows
  (GREATEST). Receipt rows are written in key order in every transaction (no deadlocks).
- Lock order, the same in every transaction: group change id, conversation rows, member
  rows, message ids, inbox entries being deleted, receipts, inbox heads; rows of one kind in
  key order. Waits therefore never form a cycle. (`forget_device` takes its inbox head
  before its last sweep of the entries, which skips entries an acknowledgement holds: that
  acknowledgement deletes them.)

Batching: sends and acknowledgements are coalesced per process (`_Batcher`): the calls that
arrive while a batch runs form the next one (at most `inflight` batches at a time), and a
batch is one transaction of a few multi-row statements over `unnest(...)`, whatever its
size: a send batch is BEGIN, lock the conversations, one statement for message ids,
messages, envelopes and counters, one for inbox heads, entries and outbox events, COMMIT;
an acknowledgement batch is BEGIN, read the heads, one statement deleting the entries and
recording first deliveries (and reading the senders' devices), the inbox/outbox one,
COMMIT. This is what SQLite's `write_many` does. A batch that fails for any reason but an
unavailable database runs again item by item, so a bad item fails alone. Reads are single
statements on the pool.

DevicesOf (planners): the devices of the users a planner may ask about are read before it
runs (acknowledgements: the senders of the acknowledged entries; MarkRead: the reader and
the senders of the newly read range); asking about anyone else is a programming error."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg

from services.messaging import rows
from services.messaging.rows import CONV_COLS, ENV_FIELDS, MSG_FIELDS, N_MSG, cols
from services.messaging.store import (
    READ_SPAN,
    Acknowledged,
    AckPlanner,
    Appended,
    Changed,
    ConversationRow,
    ConversationState,
    ConversationType,
    ConversationWrite,
    CursorAhead,
    Delivered,
    EntryKind,
    EnvelopeRow,
    EventsFor,
    Existing,
    InboxItem,
    InboxState,
    Member,
    MessageKind,
    MessageRow,
    NewEntry,
    NewMessage,
    NotMember,
    OutboxEvent,
    QueuedEntry,
    ReadMarked,
    ReadPlanner,
    ReceiptRow,
    Recipient,
    SequenceAhead,
    Stale,
    StepKind,
)
from services.runtime import errors, outbox
from services.runtime import logging as zlog
from services.runtime.config import Settings
from services.runtime.postgres import PostgresDatabase, open_service_database

log = zlog.get("messaging.postgres")

SERVICE = "messaging"
MIGRATIONS = pathlib.Path(__file__).parent / "migrations" / "postgres"
# Partitioned by month on create_time (epoch seconds): app.py keeps them ahead with a
# PartitionMaintainer(db, PARTITIONED, unit="epoch_s").
PARTITIONED = ("messages", "envelopes")

MAX_BATCH = 256  # calls per batch transaction
MAX_BATCH_BYTES = 4 * 1024 * 1024  # ciphertext per send batch (one statement carries it)
BATCH_INFLIGHT = 2  # batch transactions of one kind per process at a time
_ID_RACE_ATTEMPTS = 3
_KNOWN_INBOXES_MAX = 100_000

_JOIN_MSG = ("JOIN messages m ON m.conversation_id = i.conversation_id"
             " AND m.sequence = i.sequence AND m.create_time = i.create_time")
_BY_ID = f"SELECT {cols('m', MSG_FIELDS)} FROM message_ids i {_JOIN_MSG} WHERE i.id = $1"
_BY_IDS = (f"SELECT {cols('m', MSG_FIELDS)} FROM message_ids i {_JOIN_MSG}"
           " WHERE i.id = ANY($1::text[])")


class _IdTaken(Exception):
    """One of the batch's message ids was taken (by a concurrent send or long ago): run the
    batch again, looking the ids up first."""


class _Rollback(Exception):
    """Leave the transaction without committing, answering `result`."""

    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result


# -- batching --------------------------------------------------------------------------------


class _Batcher:
    """Coalesces concurrent calls: `submit(item)` queues the item and awaits its result;
    workers (at most `inflight`) take what is queued (up to `max_batch` items or
    `max_weight`) and run `run(items) -> results` for it, one transaction per batch.

    While a batch runs, the calls that arrive form the next one, so the busier the service
    the bigger the batches (group commit) without a timer. A call cancelled before its
    batch starts is dropped; once started, its write stands (callers are idempotent or
    re-read)."""

    def __init__(self, run: Callable[[list], Awaitable[list]], *, max_batch: int = MAX_BATCH,
                 inflight: int = BATCH_INFLIGHT, weight: Callable[[Any], int] | None = None,
                 max_weight: int = 0) -> None:
        self._run = run
        self._max_batch = max_batch
        self._inflight = inflight
        self._weight = weight
        self._max_weight = max_weight
        self._queue: collections.deque[tuple[Any, asyncio.Future]] = collections.deque()
        # Counted by hand, not by the tasks' done callbacks: a worker that found the queue
        # empty must stop counting in that same step, or a call queued before its callback
        # ran would wait for a worker that is gone.
        self._running = 0
        self._workers: set[asyncio.Task] = set()

    async def submit(self, item: Any) -> Any:
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        if self._running < self._inflight:
            self._running += 1
            task = asyncio.create_task(self._work())
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)
        return await fut

    def _take(self) -> list[tuple[Any, asyncio.Future]]:
        batch: list[tuple[Any, asyncio.Future]] = []
        weight = 0
        while self._queue and len(batch) < self._max_batch:
            item, fut = self._queue[0]
            if self._weight is not None:
                w = self._weight(item)
                if batch and weight + w > self._max_weight:
                    break
                weight += w
            self._queue.popleft()
            if not fut.done():
                batch.append((item, fut))
        return batch

    async def _work(self) -> None:
        try:
            while self._queue:
                batch = self._take()
                if batch:
                    await self._one_batch(batch)
        finally:
            self._running -= 1

    async def _one_batch(self, batch: list[tuple[Any, asyncio.Future]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as e:
            if len(batch) == 1 or isinstance(e, errors.Unavailable):
                # Alone they would fail the same way (the database is away).
                for _, fut in batch:
                    _settle(fut, e)
                return
            for item, fut in batch:  # each alone, so only the bad one fails
                try:
                    (result,) = await self._run([item])
                except Exception as one:
                    _settle(fut, one)
                else:
                    _settle(fut, result)
            return
        for (_, fut), result in zip(batch, results, strict=True):
            _settle(fut, result)

    async def drain(self) -> None:
        while self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)


def _settle(fut: asyncio.Future, outcome: Any) -> None:
    if fut.done():  # the caller went away
        return
    if isinstance(outcome, BaseException):
        fut.set_exception(outcome)
    else:
        fut.set_result(outcome)


# -- shared statements -----------------------------------------------------------------------


_LOAD = (f"SELECT {cols('c', rows.CONV_FIELDS)}, m.user_id, m.joined_sequence, m.admin"
         " FROM conversations c LEFT JOIN members m ON m.conversation_id = c.id"
         " WHERE c.id = $1")


async def _load(c, conversation_id: str) -> ConversationState | None:
    """The conversation and its members, from one statement (one snapshot: the members
    match the version)."""
    found = await c.fetch(_LOAD, conversation_id)
    if not found:
        return None
    n = rows.N_CONV
    return ConversationState(rows.conv(found[0]), {
        r[n]: Member(r[n], r[n + 1], r[n + 2]) for r in found if r[n] is not None})


def _devices_of(known: dict[str, list[str]]):
    def devices_of(user_id: str) -> list[str]:
        try:
            return known[user_id]
        except KeyError:
            raise LookupError(f"devices_of({user_id!r}): the PostgreSQL store reads the "
                              "devices of the users a planner may ask about before it runs; "
                              "this one was not among them") from None
    return devices_of


@dataclasses.dataclass(slots=True)
class _Head:
    user_id: str
    new: int = 0  # entries to queue
    removed: int = 0  # entries this transaction deleted (acknowledgements)
    acked: int = 0  # acknowledged position to move to


# The transaction's one allocation of inbox seqs, the entries it numbers and the outbox
# events, in one statement. `h` bumps (or creates) each device's head in device order and
# holds its lock until commit; entry k (1-based) of n for a device gets last_seq - n + k;
# a revoked inbox takes nothing. $1-$5: heads; $6-$15: entries; $16: now; $17-$21: events.
_QUEUE_SQL = f"""
WITH h AS (
    INSERT INTO inboxes AS i (device_id, user_id, last_seq, pending, acked_seq)
    SELECT d, u, n, n - r, a FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[],
                                         $5::bigint[]) AS v(d, u, n, r, a)
    ORDER BY d
    ON CONFLICT (device_id) DO UPDATE SET
        last_seq = i.last_seq + CASE WHEN i.revoked THEN 0 ELSE excluded.last_seq END,
        pending = CASE WHEN i.revoked THEN 0 ELSE i.pending + excluded.pending END,
        acked_seq = GREATEST(i.acked_seq, excluded.acked_seq)
    RETURNING device_id, last_seq, revoked, pending),
e AS (
    INSERT INTO inbox (device_id, seq, kind, conversation_id, message_id, message_seq,
                       message_time, sender_user, payload, create_time)
    SELECT v.d, h.last_seq - v.n + v.k, v.kind, v.cv, v.mi, v.ms, v.mt, v.su, v.p, $16
    FROM unnest($6::text[], $7::bigint[], $8::bigint[], $9::smallint[], $10::text[],
                $11::text[], $12::bigint[], $13::float8[], $14::text[], $15::bytea[])
         AS v(d, k, n, kind, cv, mi, ms, mt, su, p)
    JOIN h ON h.device_id = v.d WHERE NOT h.revoked),
o AS ({outbox.pg_insert_events(17)})
SELECT device_id, last_seq, revoked, pending FROM h
"""


async def _queue(c, entries: Sequence[NewEntry], now: float, *,
                 events: Sequence[OutboxEvent] = (),
                 times: Mapping[str, float] | None = None,
                 heads: dict[str, _Head] | None = None,
                 ensure: dict[str, str] | None = None) -> tuple[list[QueuedEntry | None],
                                                                dict[str, int]]:
    """Queue inbox entries and write `events` to the outbox: the transaction's one
    allocation of inbox seqs (see the module docstring). One QueuedEntry per entry, None for
    a revoked device's (it takes nothing). `times`: message id -> create_time of the MESSAGE
    entries' messages (their partition). `heads`: acknowledging devices' head changes,
    applied in the same statement. `ensure`: device id -> user id of inboxes that must exist
    (a sender's, so it gets receipts). Returns the queued entries and the devices' `pending`
    after the change."""
    heads = dict(heads or {})
    for d, u in (ensure or {}).items():
        heads.setdefault(d, _Head(u))
    index: list[int] = []  # entry i is entry index[i] (1-based) of its device
    for e in entries:
        head = heads.setdefault(e.device_id, _Head(e.user_id))
        head.new += 1
        index.append(head.new)
    if not heads:
        await _outbox(c, events)
        return [], {}
    times = times or {}
    order = sorted(heads)
    found = await c.fetch(
        _QUEUE_SQL, order, [heads[d].user_id for d in order], [heads[d].new for d in order],
        [heads[d].removed for d in order], [heads[d].acked for d in order],
        [e.device_id for e in entries], index, [heads[e.device_id].new for e in entries],
        [int(e.kind) for e in entries], [e.conversation_id for e in entries],
        [e.message_id or None for e in entries], [e.message_seq or None for e in entries],
        [times[e.message_id] if e.message_id else None for e in entries],
        [e.sender_user for e in entries], [e.payload or None for e in entries], now,
        *outbox.pg_event_arrays([(v.topic, v.key, v.payload, v.event_id) for v in events]))
    last = {r[0]: None if r[2] else r[1] for r in found}  # None: revoked
    queued: list[QueuedEntry | None] = []
    for e, k in zip(entries, index, strict=True):
        top = last[e.device_id]
        queued.append(None if top is None else QueuedEntry(top - heads[e.device_id].new + k, e))
    return queued, {r[0]: r[3] for r in found}


async def _outbox(c, events: Sequence[OutboxEvent]) -> None:
    await outbox.add_events(c, [(e.topic, e.key, e.payload, e.event_id) for e in events])


# -- sends ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Append:
    message: NewMessage
    expected_version: int
    deliveries: Sequence[Recipient]
    now: float
    events: EventsFor


async def _append_many(c, items: list[_Append], known: set[str], check_ids: bool) -> list:
    """The batch's sends in one transaction. The message ids are looked up first only when
    `check_ids` (a rerun after an id was found taken) or when an item is Stale (an existing
    id answers before a version check, as on SQLite); otherwise the insert into message_ids
    finds out, and a taken id reruns the batch (_IdTaken)."""
    convs = {r[0]: [r[1], r[2], r[3], r[4]] for r in await c.fetch(
        "SELECT id, last_sequence, version, closed, message_ttl_s FROM conversations"
        " WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE",
        sorted({it.message.conversation_id for it in items}))}
    existing: dict[str, MessageRow] = {}
    if check_ids or any(_stale(convs.get(it.message.conversation_id), it) for it in items):
        existing = {r[0]: rows.msg(r) for r in await c.fetch(
            _BY_IDS, list(dict.fromkeys(it.message.id for it in items)))}
    results: list = []
    appended: dict[str, MessageRow] = {}
    touched: dict[str, tuple[int, float]] = {}
    msg_cols: tuple[list, ...] = tuple([] for _ in range(12))
    env_cols: tuple[list, ...] = tuple([] for _ in range(8))
    entries: list[NewEntry] = []
    events: list[OutboxEvent] = []
    senders: dict[str, str] = {}
    for it in items:
        m = it.message
        found = existing.get(m.id) or appended.get(m.id)
        if found is not None:
            results.append(Existing(found))
            continue
        conv = convs.get(m.conversation_id)
        if _stale(conv, it):
            results.append(Stale())
            continue
        conv[0] += 1
        ttl = conv[3]
        row = MessageRow(
            id=m.id, conversation_id=m.conversation_id, sequence=conv[0], kind=m.kind,
            sender_user=m.sender_user, sender_device=m.sender_device, create_time=it.now,
            expire_time=None if ttl is None else it.now + ttl, delete_time=None,
            content_hash=m.content_hash, sender_key_ciphertext=m.sender_key_ciphertext,
            system_event=None, envelope_count=len(m.envelopes),
            ciphertext_bytes=m.ciphertext_bytes)
        appended[m.id] = row
        touched[m.conversation_id] = (row.sequence, it.now)
        for col, v in zip(msg_cols, (row.id, row.conversation_id, row.sequence,
                                     row.create_time, int(row.kind), row.sender_user,
                                     row.sender_device, row.expire_time, row.content_hash,
                                     row.sender_key_ciphertext, row.envelope_count,
                                     row.ciphertext_bytes), strict=True):
            col.append(v)
        for e in m.envelopes:
            for col, v in zip(env_cols, (m.conversation_id, row.sequence, e.device_id,
                                         row.create_time, e.user_id, e.type, e.ciphertext,
                                         e.ciphertext_sha256), strict=True):
                col.append(v)
        if m.sender_device not in known:
            senders.setdefault(m.sender_device, m.sender_user)
        start = len(entries)
        entries += [NewEntry(d.user_id, d.device_id, EntryKind.MESSAGE, m.conversation_id,
                             message_id=m.id, message_seq=row.sequence,
                             sender_user=m.sender_user) for d in it.deliveries]
        events += it.events(row)
        results.append((row, start, len(entries)))
    if appended:
        ids = list(touched)
        stored = await c.fetchval(
            "WITH ids AS ("
            " INSERT INTO message_ids (id, conversation_id, sequence, create_time)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::float8[])"
            " ON CONFLICT DO NOTHING RETURNING 1),"
            " msgs AS ("
            " INSERT INTO messages (id, conversation_id, sequence, create_time, kind,"
            " sender_user, sender_device, expire_time, content_hash, sender_key_ciphertext,"
            " envelope_count, ciphertext_bytes)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::float8[],"
            " $5::smallint[], $6::text[], $7::text[], $8::float8[], $9::bytea[], $10::bytea[],"
            " $11::int[], $12::int[])),"
            " envs AS ("
            " INSERT INTO envelopes (conversation_id, sequence, device_id, create_time,"
            " user_id, type, ciphertext, ciphertext_sha256)"
            " SELECT * FROM unnest($13::text[], $14::bigint[], $15::text[], $16::float8[],"
            " $17::text[], $18::smallint[], $19::bytea[], $20::bytea[])),"
            " convs AS ("
            " UPDATE conversations c SET last_sequence = v.s, last_activity_time = v.t"
            " FROM unnest($21::text[], $22::bigint[], $23::float8[]) AS v(id, s, t)"
            " WHERE c.id = v.id)"
            " SELECT count(*) FROM ids",
            *msg_cols, *env_cols, ids, [touched[i][0] for i in ids],
            [touched[i][1] for i in ids])
        if stored != len(appended):
            raise _IdTaken()
    queued, _ = await _queue(c, entries, max(it.now for it in items), events=events,
                             ensure=senders,
                             times={i: r.create_time for i, r in appended.items()})
    return [Appended(r[0], [q for q in queued[r[1]:r[2]] if q is not None])
            if isinstance(r, tuple) else r for r in results]


def _stale(conv: list | None, item: _Append) -> bool:
    """The conversation (locked: [last_sequence, version, closed, ttl]) moved or closed."""
    return conv is None or conv[1] != item.expected_version or conv[2]


# -- acknowledgements -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Ack:
    user_id: str
    device_id: str
    up_to: int
    now: float
    plan: AckPlanner


# Deletes the acknowledged entries and records first deliveries in one statement: the
# receipt rows are written in key order (see the module docstring), only where no delivery
# was recorded yet. It also reads the devices of the entries' senders (the planner's
# devices_of). Rows: 0 = a deleted entry, 1 = a first delivery, 2 = a sender's device.
_ACK_SQL = """
WITH v AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::float8[])
           AS v(d, u, usr, t)),
del AS (DELETE FROM inbox i USING v WHERE i.device_id = v.d AND i.seq <= v.u
        RETURNING i.device_id, i.seq, i.kind, i.conversation_id, i.message_id,
                  i.message_seq, i.sender_user, v.usr, v.t),
rec AS (INSERT INTO receipts AS r (conversation_id, sequence, user_id, deliver_time)
        SELECT DISTINCT ON (conversation_id, message_seq, usr)
               conversation_id, message_seq, usr, t
        FROM del WHERE kind = 1 AND sender_user <> '' AND sender_user <> usr
        ORDER BY conversation_id, message_seq, usr, seq
        ON CONFLICT (conversation_id, sequence, user_id) DO UPDATE
        SET deliver_time = excluded.deliver_time WHERE r.deliver_time IS NULL
        RETURNING conversation_id, sequence, user_id)
SELECT 0, device_id, seq, kind, conversation_id, message_id, message_seq, sender_user
FROM del
UNION ALL
SELECT 1, user_id, NULL, NULL, conversation_id, NULL, sequence, NULL FROM rec
UNION ALL
SELECT 2, user_id, NULL, NULL, NULL, device_id, NULL, NULL FROM inboxes
WHERE NOT revoked AND user_id IN (SELECT sender_user FROM del WHERE sender_user <> '')
"""


async def _ack_many(c, items: list[_Ack]) -> list:
    devices = list(dict.fromkeys(it.device_id for it in items))
    heads = {r[0]: [r[1], r[2], r[3]] for r in await c.fetch(
        "SELECT device_id, last_seq, acked_seq, pending FROM inboxes"
        " WHERE device_id = ANY($1::text[])", devices)}
    results: list = [None] * len(items)
    ranges: dict[str, list[int]] = {}  # device -> items with something to acknowledge
    for i, it in enumerate(items):
        last_seq, acked, _ = heads.get(it.device_id, (0, 0, 0))
        if it.up_to > last_seq:
            results[i] = CursorAhead(last_seq)
        elif it.up_to > acked:
            ranges.setdefault(it.device_id, []).append(i)
            heads[it.device_id][1] = it.up_to
    removed: dict[int, list] = {i: [] for ix in ranges.values() for i in ix}
    first: set[tuple[str, int, str]] = set()
    senders: dict[str, list[str]] = {}  # sender -> devices (with an inbox, not revoked)
    changes: dict[str, _Head] = {}
    if ranges:
        order = sorted(ranges)
        found = await c.fetch(
            _ACK_SQL, order, [heads[d][1] for d in order],
            [items[ranges[d][0]].user_id for d in order],
            [max(items[i].now for i in ranges[d]) for d in order])
        for d in order:
            changes[d] = _Head(items[ranges[d][0]].user_id, acked=heads[d][1])
        for r in sorted(found, key=lambda r: (r[0], r[2] or 0, r[5] or "")):
            if r[0] == 1:
                first.add((r[4], r[6], r[1]))
                continue
            if r[0] == 2:
                senders.setdefault(r[1], []).append(r[5])
                continue
            changes[r[1]].removed += 1
            # The first item of the device whose range covers the entry.
            owner = next((i for i in ranges[r[1]] if r[2] <= items[i].up_to),
                         ranges[r[1]][-1])
            removed[owner].append(r)
    for rs in removed.values():
        for r in rs:
            if r[7]:
                senders.setdefault(r[7], [])
    devices_of = _devices_of(senders)
    entries: list[NewEntry] = []
    events: list[OutboxEvent] = []
    spans: dict[int, tuple[int, int]] = {}
    for i in sorted(removed):
        it = items[i]
        delivered = []
        for r in removed[i]:  # in seq order
            key = (r[4], r[6], it.user_id)
            if r[3] == EntryKind.MESSAGE and key in first:
                first.discard(key)  # two devices of one user in one batch: the first counts
                delivered.append(Delivered(r[5], r[4], r[6], r[7]))
        start = len(entries)
        if delivered:
            fan = it.plan(delivered, devices_of)
            entries += fan.entries
            events += fan.events
        spans[i] = (start, len(entries))
    queued, pending = await _queue(c, entries, max(it.now for it in items), events=events,
                                   heads=changes)
    for i, it in enumerate(items):
        if results[i] is None:
            a, b = spans.get(i, (0, 0))
            left = pending.get(it.device_id, heads.get(it.device_id, (0, 0, 0))[2])
            results[i] = Acknowledged(left, [q for q in queued[a:b] if q is not None])
    return results


# -- the store --------------------------------------------------------------------------------


# MarkRead after the member row is locked and checked: moves the position, records read
# times (in key order, only where none was), and returns the senders of the newly read
# range (0 rows) and the devices of the reader and of those senders (1 rows).
_READ_SQL = """
WITH upd AS (UPDATE members SET read_sequence = $3, read_time = $4
             WHERE conversation_id = $1 AND user_id = $2),
rec AS (INSERT INTO receipts AS r (conversation_id, sequence, user_id, read_time)
        SELECT conversation_id, sequence, $2, $4 FROM messages
        WHERE $6 AND conversation_id = $1 AND sequence > $5 AND sequence <= $3
          AND sender_user NOT IN ('', $2)
        ORDER BY sequence
        ON CONFLICT (conversation_id, sequence, user_id) DO UPDATE
        SET read_time = excluded.read_time WHERE r.read_time IS NULL),
s AS (SELECT DISTINCT sender_user FROM messages
      WHERE conversation_id = $1 AND sequence > $5 AND sequence <= $3
        AND sender_user NOT IN ('', $2))
SELECT 0, sender_user, NULL FROM s
UNION ALL
SELECT 1, user_id, device_id FROM inboxes
WHERE NOT revoked AND (user_id = $2 OR user_id IN (SELECT sender_user FROM s))
"""


class PostgresMessageStore:
    def __init__(self, db: PostgresDatabase, *, inflight: int | None = None) -> None:
        self.db = db
        inflight = inflight or BATCH_INFLIGHT
        # Inboxes never disappear (a revoked one stays), so a device seen with an inbox
        # here needs no "make sure it exists" write on its next send.
        self._known_inboxes: set[str] = set()
        self._sends = _Batcher(self._append_batch, inflight=inflight,
                               weight=lambda it: it.message.ciphertext_bytes,
                               max_weight=MAX_BATCH_BYTES)
        self._acks = _Batcher(self._ack_batch, inflight=inflight)

    @classmethod
    async def open(cls, settings: Settings) -> PostgresMessageStore:
        return cls(await open_service_database(settings, SERVICE))

    async def close(self) -> None:
        await self._sends.drain()
        await self._acks.drain()
        await self.db.close()

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self.db.transaction() as c:
                yield c
        except asyncpg.CheckViolationError as e:
            if "no partition" not in str(e):
                raise
            log.error("no partition for a message's month: is the PartitionMaintainer "
                      "running?", error=str(e))
            raise errors.Unavailable("message storage for this month is not ready; retry",
                                     reason="PARTITION_MISSING") from e

    async def _run(self, fn: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        """fn(conn) in a transaction; a _Rollback(result) leaves it uncommitted."""
        try:
            async with self._tx() as c:
                return await fn(c)
        except _Rollback as r:
            return r.result

    # -- writes ------------------------------------------------------------------------------

    async def _append_batch(self, items: list[_Append]) -> list:
        for attempt in range(_ID_RACE_ATTEMPTS):
            try:
                async with self._tx() as c:
                    out = await _append_many(c, items, self._known_inboxes,
                                             check_ids=attempt > 0)
            except _IdTaken:
                continue  # the other transaction committed: this time the check finds it
            if len(self._known_inboxes) > _KNOWN_INBOXES_MAX:
                self._known_inboxes.clear()
            # Only where the append was written (and so ensured the sender's inbox): a Stale
            # item wrote nothing, and its retry must still ensure it.
            self._known_inboxes.update(it.message.sender_device
                                       for it, r in zip(items, out, strict=True)
                                       if isinstance(r, Appended))
            return out
        raise errors.Aborted("message ids kept colliding with concurrent sends; retry",
                             reason="TRANSACTION_CONFLICT")

    async def _ack_batch(self, items: list[_Ack]) -> list:
        async with self._tx() as c:
            return await _ack_many(c, items)

    async def append_message(self, message: NewMessage, *, expected_version: int,
                             deliveries: Sequence[Recipient], now: float,
                             events: EventsFor) -> Appended | Existing | Stale:
        return await self._sends.submit(_Append(message, expected_version, deliveries, now,
                                                events))

    async def acknowledge(self, user_id: str, device_id: str, up_to: int, now: float,
                          plan: AckPlanner) -> Acknowledged | CursorAhead:
        return await self._acks.submit(_Ack(user_id, device_id, up_to, now, plan))

    async def change_conversation(self, change: ConversationWrite) -> Changed | Stale:
        cid, now = change.conversation_id, change.now

        async def op(c: asyncpg.Connection) -> Changed | Stale:
            if change.change_id:
                status = await c.execute(
                    "INSERT INTO group_changes (change_id, conversation_id, sequence,"
                    " apply_time) VALUES ($1, $2, 0, $3) ON CONFLICT DO NOTHING",
                    change.change_id, cid, now)
                if status != "INSERT 0 1":  # applied already (maybe just now, elsewhere)
                    r = await c.fetchrow("SELECT conversation_id, sequence FROM group_changes"
                                         " WHERE change_id = $1", change.change_id)
                    state = await _load(c, r[0])
                    assert state is not None
                    raise _Rollback(Changed(state, r[1], (), replayed=True))
            n = len(change.steps)
            kinds = {s.kind for s in change.steps}
            settings = StepKind.SETTINGS in kinds
            if change.expected_version == 0:
                direct = change.type is ConversationType.DIRECT
                status = await c.execute(
                    "INSERT INTO conversations (id, type, group_id, direct_key, create_time,"
                    " update_time, last_activity_time, last_sequence, closed, message_ttl_s,"
                    " settings_version) VALUES ($1, $2, $3, $4, $5, $5, $5, $6, $7, $8, $9)"
                    " ON CONFLICT DO NOTHING",
                    cid, int(change.type), "" if direct else cid,
                    ":".join(sorted(change.direct_users)) if direct else None, now, n,
                    StepKind.CLOSE in kinds, change.message_ttl_s if settings else None,
                    2 if settings else 1)
                if status != "INSERT 0 1":
                    raise _Rollback(Stale())
                last = n
            else:
                last = await c.fetchval(
                    "UPDATE conversations SET version = version + 1, update_time = $3,"
                    " last_sequence = last_sequence + $4,"
                    " last_activity_time = CASE WHEN $4 > 0 THEN $3"
                    " ELSE last_activity_time END,"
                    " closed = closed OR $5,"
                    " message_ttl_s = CASE WHEN $6 THEN $7 ELSE message_ttl_s END,"
                    " settings_version = settings_version + $6::int"
                    " WHERE id = $1 AND version = $2 RETURNING last_sequence",
                    cid, change.expected_version, now, n, StepKind.CLOSE in kinds, settings,
                    change.message_ttl_s)
                if last is None:
                    raise _Rollback(Stale())
            first = last - n + 1
            entries: list[NewEntry] = []
            for k, step in enumerate(change.steps):
                sequence = first + k
                if step.kind in (StepKind.CREATE, StepKind.ADD) and step.users:
                    await c.execute(
                        "INSERT INTO members (conversation_id, user_id, joined_sequence)"
                        " SELECT $1, u, $2 FROM unnest($3::text[]) AS u"
                        " ON CONFLICT DO NOTHING", cid, sequence, list(step.users))
                elif step.kind is StepKind.REMOVE and step.users:
                    await c.execute("DELETE FROM members WHERE conversation_id = $1"
                                    " AND user_id = ANY($2::text[])", cid, list(step.users))
                entries += [NewEntry(r.user_id, r.device_id, EntryKind.MESSAGE, cid,
                                     message_id=step.message_id, message_seq=sequence)
                            for r in step.deliveries]
            if n:
                await c.execute(
                    "WITH ids AS (INSERT INTO message_ids (id, conversation_id, sequence,"
                    " create_time) SELECT i, $1, s, $2 FROM unnest($3::text[], $4::bigint[])"
                    " AS v(i, s))"
                    " INSERT INTO messages (id, conversation_id, sequence, create_time, kind,"
                    " system_event) SELECT i, $1, s, $2, $5, e FROM unnest($3::text[],"
                    " $4::bigint[], $6::bytea[]) AS v(i, s, e)",
                    cid, now, [s.message_id for s in change.steps],
                    list(range(first, last + 1)), int(MessageKind.SYSTEM),
                    [s.system_event for s in change.steps])
            if change.admins is not None:
                await c.execute(
                    "UPDATE members SET admin = (user_id = ANY($2::text[]))"
                    " WHERE conversation_id = $1 AND admin <> (user_id = ANY($2::text[]))",
                    cid, sorted(change.admins))
            if change.change_id:
                await c.execute("UPDATE group_changes SET sequence = $2 WHERE change_id = $1",
                                change.change_id, last if n else 0)
            queued, _ = await _queue(c, entries, now,
                                     times={s.message_id: now for s in change.steps})
            state = await _load(c, cid)
            assert state is not None
            return Changed(state, last if n else 0, [q for q in queued if q is not None])

        return await self._run(op)

    async def mark_read(self, conversation_id: str, user_id: str, read_sequence: int,
                        now: float, record_read_time: bool,
                        plan: ReadPlanner) -> ReadMarked | NotMember | SequenceAhead:
        async def op(c: asyncpg.Connection) -> ReadMarked | NotMember | SequenceAhead:
            # The member row is locked (positions only move forward); the conversation's
            # last_sequence is as of this statement, which began after any sequence the
            # client can know of had committed.
            r = await c.fetchrow(
                "SELECT m.read_sequence, m.joined_sequence, c.last_sequence FROM members m"
                " JOIN conversations c ON c.id = m.conversation_id"
                " WHERE m.conversation_id = $1 AND m.user_id = $2 FOR UPDATE OF m",
                conversation_id, user_id)
            if r is None:
                return NotMember()
            old, joined, last = r
            if read_sequence <= old:
                return ReadMarked(old, False, ())
            if read_sequence > last:
                return SequenceAhead(last)
            low = max(old, joined, read_sequence - READ_SPAN)
            senders: list[str] = []
            known: dict[str, list[str]] = {user_id: []}
            for r in await c.fetch(_READ_SQL, conversation_id, user_id, read_sequence, now,
                                   low, record_read_time):
                if r[0] == 0:
                    senders.append(r[1])
                    known.setdefault(r[1], [])
                else:
                    known.setdefault(r[1], []).append(r[2])
            for devices in known.values():
                devices.sort()
            fan = plan(old, read_sequence, sorted(senders), _devices_of(known))
            queued, _ = await _queue(c, fan.entries, now, events=fan.events)
            return ReadMarked(read_sequence, True, [q for q in queued if q is not None])

        return await self._run(op)

    async def delete_message(self, message_id: str, now: float) -> MessageRow | None:
        async def op(c: asyncpg.Connection) -> MessageRow | None:
            r = await c.fetchrow(_BY_ID + " FOR UPDATE OF m", message_id)
            row = None if r is None else rows.msg(r)
            if row is None or row.delete_time is not None:
                return row
            expired = row.expire_time is not None and row.expire_time <= now
            delete_time = row.expire_time if expired else now
            await _erase(c, [(row.conversation_id, row.sequence, row.create_time,
                              delete_time)])
            return dataclasses.replace(row, delete_time=delete_time,
                                       sender_key_ciphertext=None)

        return await self._run(op)

    async def expire_due(self, now: float, limit: int) -> int:
        async def op(c: asyncpg.Connection) -> int:
            # SKIP LOCKED: every replica sweeps; they share the work instead of queueing.
            due = await c.fetch(
                "SELECT conversation_id, sequence, create_time, expire_time FROM messages"
                " WHERE expire_time <= $1 AND delete_time IS NULL ORDER BY expire_time"
                " LIMIT $2 FOR UPDATE SKIP LOCKED", now, limit)
            await _erase(c, [tuple(r) for r in due])
            return len(due)

        return await self._run(op)

    async def open_inbox(self, user_id: str, device_id: str) -> InboxState:
        state = await self.inbox_state(device_id)
        if state is None:
            await self.db.execute("INSERT INTO inboxes (device_id, user_id) VALUES ($1, $2)"
                                  " ON CONFLICT DO NOTHING", device_id, user_id)
            state = await self.inbox_state(device_id)
            assert state is not None
        return state

    async def forget_device(self, user_id: str, device_id: str) -> int:
        async def op(c: asyncpg.Connection) -> int:
            dropped = _count(await c.execute("DELETE FROM inbox WHERE device_id = $1",
                                             device_id))
            # Waits for allocations in flight for the device; from here on none queues.
            await c.execute("INSERT INTO inboxes (device_id, user_id, revoked)"
                            " VALUES ($1, $2, TRUE) ON CONFLICT (device_id) DO UPDATE"
                            " SET revoked = TRUE, pending = 0", device_id, user_id)
            # Entries those allocations committed meanwhile; an acknowledgement holding
            # some is deleting them itself.
            dropped += _count(await c.execute(
                "DELETE FROM inbox WHERE (device_id, seq) IN (SELECT device_id, seq FROM inbox"
                " WHERE device_id = $1 FOR UPDATE SKIP LOCKED)", device_id))
            return dropped

        return await self._run(op)

    # -- reads -------------------------------------------------------------------------------

    async def load_conversation(self, conversation_id: str) -> ConversationState | None:
        return await _load(self.db, conversation_id)

    async def get_conversation(self, conversation_id: str,
                               user_id: str) -> tuple[ConversationRow, int] | None:
        r = await self.db.fetchrow(
            f"SELECT {cols('c', rows.CONV_FIELDS)}, COALESCE(m.read_sequence, 0)"
            " FROM conversations c LEFT JOIN members m ON m.conversation_id = c.id"
            " AND m.user_id = $1 WHERE c.id = $2", user_id, conversation_id)
        return None if r is None else (rows.conv(r), r[rows.N_CONV])

    async def find_direct(self, user_a: str, user_b: str) -> ConversationRow | None:
        r = await self.db.fetchrow(f"SELECT {CONV_COLS} FROM conversations"
                                   " WHERE direct_key = $1", ":".join(sorted((user_a, user_b))))
        return None if r is None else rows.conv(r)

    async def list_conversations(self, user_id: str, after: tuple[float, str] | None,
                                 limit: int) -> list[tuple[ConversationRow, int]]:
        head = (f"SELECT {cols('c', rows.CONV_FIELDS)}, m.read_sequence FROM members m"
                " JOIN conversations c ON c.id = m.conversation_id WHERE m.user_id = $1")
        tail = " ORDER BY c.last_activity_time DESC, c.id DESC LIMIT $2"
        if after is None:
            found = await self.db.fetch(head + tail, user_id, limit)
        else:
            found = await self.db.fetch(
                head + " AND (c.last_activity_time, c.id) < ($3, $4)" + tail,
                user_id, limit, after[0], after[1])
        return [(rows.conv(r), r[rows.N_CONV]) for r in found]

    async def get_message(self, message_id: str) -> MessageRow | None:
        r = await self.db.fetchrow(_BY_ID, message_id)
        return None if r is None else rows.msg(r)

    async def get_envelopes(self, conversation_id: str, sequence: int,
                            device_id: str | None) -> list[EnvelopeRow]:
        sql = (f"SELECT {', '.join(ENV_FIELDS)} FROM envelopes"
               " WHERE conversation_id = $1 AND sequence = $2")
        if device_id is None:
            found = await self.db.fetch(sql, conversation_id, sequence)
        else:
            found = await self.db.fetch(sql + " AND device_id = $3", conversation_id,
                                        sequence, device_id)
        return [rows.env(r) for r in found]

    async def list_messages(self, conversation_id: str, device_id: str, *, min_sequence: int,
                            max_sequence: int, descending: bool,
                            limit: int) -> list[tuple[MessageRow, EnvelopeRow | None]]:
        found = await self.db.fetch(
            f"SELECT {cols('m', MSG_FIELDS)}, {cols('e', ENV_FIELDS)} FROM messages m"
            " LEFT JOIN envelopes e ON e.conversation_id = m.conversation_id"
            " AND e.sequence = m.sequence AND e.create_time = m.create_time"
            " AND e.device_id = $1"
            " WHERE m.conversation_id = $2 AND m.sequence >= $3 AND m.sequence <= $4"
            f" ORDER BY m.sequence {'DESC' if descending else 'ASC'} LIMIT $5",
            device_id, conversation_id, min_sequence, max_sequence, limit)
        return [(rows.msg(r), rows.env(r, N_MSG)) for r in found]

    async def read_inbox(self, device_id: str, after_seq: int, limit: int) -> list[InboxItem]:
        found = await self.db.fetch(
            f"SELECT i.seq, i.kind, i.conversation_id, i.payload, {cols('m', MSG_FIELDS)},"
            f" {cols('e', ENV_FIELDS)} FROM inbox i"
            " LEFT JOIN messages m ON m.conversation_id = i.conversation_id"
            " AND m.sequence = i.message_seq AND m.create_time = i.message_time"
            " LEFT JOIN envelopes e ON e.conversation_id = i.conversation_id"
            " AND e.sequence = i.message_seq AND e.create_time = i.message_time"
            " AND e.device_id = i.device_id"
            " WHERE i.device_id = $1 AND i.seq > $2 ORDER BY i.seq LIMIT $3",
            device_id, after_seq, limit)
        return [InboxItem(r[0], EntryKind(r[1]), r[2], r[3] or b"", rows.msg(r, 4),
                          rows.env(r, 4 + N_MSG)) for r in found]

    async def inbox_state(self, device_id: str) -> InboxState | None:
        r = await self.db.fetchrow("SELECT user_id, last_seq, acked_seq, pending, revoked"
                                   " FROM inboxes WHERE device_id = $1", device_id)
        return None if r is None else InboxState(r[0], r[1], r[2], r[3], r[4])

    async def list_receipts(self, conversation_id: str, sequence: int, after_user: str,
                            limit: int) -> list[ReceiptRow]:
        return [ReceiptRow(*r) for r in await self.db.fetch(
            "SELECT user_id, deliver_time, read_time FROM receipts WHERE conversation_id = $1"
            " AND sequence = $2 AND user_id > $3 ORDER BY user_id LIMIT $4",
            conversation_id, sequence, after_user, limit)]

    async def conversation_peers(self, user_id: str, candidates: Sequence[str]) -> set[str]:
        return {r[0] for r in await self.db.fetch(
            "SELECT DISTINCT o.user_id FROM members me"
            " JOIN conversations c ON c.id = me.conversation_id AND NOT c.closed"
            " JOIN members o ON o.conversation_id = me.conversation_id"
            " WHERE me.user_id = $1 AND o.user_id = ANY($2::text[])",
            user_id, list(dict.fromkeys(candidates)))}

    async def group_change(self, change_id: str) -> tuple[str, int] | None:
        r = await self.db.fetchrow("SELECT conversation_id, sequence FROM group_changes"
                                   " WHERE change_id = $1", change_id)
        return None if r is None else (r[0], r[1])


def _count(status: str) -> int:
    """The row count of a command status such as `DELETE 3`."""
    return int(status.rsplit(" ", 1)[-1])


async def _erase(c, targets: Sequence[tuple[str, int, float, float]]) -> None:
    """Tombstone (conversation, sequence, create_time, delete_time) messages: ciphertext and
    envelopes go, the row and its sequence stay."""
    if not targets:
        return
    await c.execute(
        "WITH v AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::float8[])"
        " AS v(cv, s, t, dt)),"
        " env AS (DELETE FROM envelopes e USING v WHERE e.conversation_id = v.cv"
        " AND e.sequence = v.s AND e.create_time = v.t)"
        " UPDATE messages m SET delete_time = v.dt, sender_key_ciphertext = NULL FROM v"
        " WHERE m.conversation_id = v.cv AND m.sequence = v.s AND m.create_time = v.t",
        [t[0] for t in targets], [t[1] for t in targets], [t[2] for t in targets],
        [t[3] for t in targets])
