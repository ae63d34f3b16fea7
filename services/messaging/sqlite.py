"""SQLite adapter of the message store (embedded mode).

Writes go through the runtime's single writer thread (`SqliteDatabase.write` /
`write_many`), which commits concurrent operations together. The hot ones, sends and
acknowledgements, are `write_many` operations: a batch of N of them runs as about ten
multi-row statements in all, because on a busy process every statement is a GIL hand-off
between the writer thread and the event loop and every commit writes each dirty page to the
WAL. Reads run on reader threads, one hop per call, in one WAL snapshot.

Sequences: a conversation's next sequence and a device inbox's next seq are read and bumped
inside the write transaction that uses them (BEGIN IMMEDIATE: one writer at a time), so
they are gapless and in commit order. Checks that decide an outcome (message id taken,
conversation version moved, cursor ahead) are made before anything is written, so an
operation that comes back Existing/Stale/CursorAhead wrote nothing."""

from __future__ import annotations

import dataclasses
import pathlib
import sqlite3
from collections.abc import Sequence

from services.messaging import rows
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
    QueuedEntry,
    ReadMarked,
    ReadPlanner,
    ReceiptRow,
    Recipient,
    SequenceAhead,
    Stale,
    StepKind,
)
from services.runtime.outbox import add_events_sync
from services.runtime.sqlite import SqliteDatabase

MIGRATIONS = pathlib.Path(__file__).parent / "migrations" / "sqlite"

_CONV_COLS = rows.CONV_COLS
_MSG_FIELDS = rows.MSG_FIELDS
_ENV_FIELDS = rows.ENV_FIELDS
_INBOX_COLS = ("device_id, seq, kind, conversation_id, message_id, message_seq, sender_user,"
               " payload, create_time")
_MSG_COLS = rows.MSG_COLS
_N_MSG = rows.N_MSG
_SQL_CHUNK = 500  # stay under SQLite's bound-parameter limit
_cols, _conv, _msg, _env = rows.cols, rows.conv, rows.msg, rows.env


def _load(c: sqlite3.Connection, conversation_id: str) -> ConversationState | None:
    r = c.execute(f"SELECT {_CONV_COLS} FROM conversations WHERE id = ?",
                  (conversation_id,)).fetchone()
    if r is None:
        return None
    members = {
        m[0]: Member(m[0], m[1], bool(m[2]))
        for m in c.execute("SELECT user_id, joined_sequence, admin FROM members"
                           " WHERE conversation_id = ?", (conversation_id,))}
    return ConversationState(_conv(r), members)


def _devices_map(c: sqlite3.Connection, user_ids) -> dict[str, list[str]]:
    """Devices with an inbox that is not revoked, by user (receipts and read positions go
    to them)."""
    out: dict[str, list[str]] = {u: [] for u in user_ids}
    for user_id, device_id in _select_in(
            c, "SELECT user_id, device_id FROM inboxes WHERE revoked = 0 AND user_id IN ({})"
               " ORDER BY user_id, device_id", list(out)):
        out[user_id].append(device_id)
    return out


def _devices_of(c: sqlite3.Connection, prefetched: dict[str, list[str]] | None = None):
    cache = dict(prefetched or {})

    def devices_of(user_id: str) -> list[str]:
        if user_id not in cache:
            cache.update(_devices_map(c, [user_id]))
        return cache[user_id]
    return devices_of


def _select_in(c: sqlite3.Connection, sql: str, keys: Sequence, params: Sequence = ()) -> list:
    """`sql` has one `{}` where the IN list goes; run in chunks under the variable limit."""
    out: list = []
    keys = list(keys)
    for i in range(0, len(keys), _SQL_CHUNK):
        chunk = keys[i:i + _SQL_CHUNK]
        out += c.execute(sql.format(",".join("?" * len(chunk))), (*params, *chunk)).fetchall()
    return out


def _insert(c: sqlite3.Connection, head: str, ncols: int, rows: Sequence[tuple],
            tail: str = "") -> list:
    """One multi-row INSERT per chunk of rows (instead of one statement per row); returns
    the rows of a RETURNING tail."""
    out: list = []
    if not rows:
        return out
    per = max(1, min(_SQL_CHUNK, 999 // ncols))
    one = "(" + ",".join("?" * ncols) + ")"
    for i in range(0, len(rows), per):
        chunk = rows[i:i + per]
        out += c.execute(f"{head} {','.join([one] * len(chunk))}{tail}",
                         [v for r in chunk for v in r]).fetchall()
    return out


def _queue(c: sqlite3.Connection, entries: Sequence[NewEntry], now: float,
           ensure: dict[str, str] | None = None) -> list[QueuedEntry | None]:
    """Queue inbox entries, each device's next seqs allocated in this transaction; one
    QueuedEntry per entry, None for a revoked device's (it takes nothing). `ensure`: device
    id -> user id of inboxes that must exist (a sender's, so it gets receipts)."""
    devices: dict[str, str] = dict(ensure or {})
    for e in entries:
        devices.setdefault(e.device_id, e.user_id)
    if not devices:
        return []
    heads = {r[0]: (r[1], bool(r[2])) for r in _select_in(
        c, "SELECT device_id, last_seq, revoked FROM inboxes WHERE device_id IN ({})",
        list(devices))}
    last = {d: h[0] for d, h in heads.items()}
    added: dict[str, int] = {d: 0 for d in devices if d not in heads}
    rows, queued = [], []
    for e in entries:
        head = heads.get(e.device_id)
        if head is not None and head[1]:
            queued.append(None)
            continue
        seq = last.get(e.device_id, 0) + 1
        last[e.device_id] = seq
        added[e.device_id] = added.get(e.device_id, 0) + 1
        rows.append((e.device_id, seq, int(e.kind), e.conversation_id, e.message_id or None,
                     e.message_seq or None, e.sender_user, e.payload or None, now))
        queued.append(QueuedEntry(seq, e))
    _insert(c, "INSERT INTO inboxes (device_id, user_id, last_seq, pending) VALUES", 4,
            [(d, devices[d], last.get(d, 0), n) for d, n in added.items()],
            " ON CONFLICT (device_id) DO UPDATE SET last_seq = excluded.last_seq,"
            " pending = pending + excluded.pending")
    _insert(c, f"INSERT INTO inbox ({_INBOX_COLS}) VALUES", 9, rows)
    return queued


def _outbox(c: sqlite3.Connection, fan_events) -> None:
    add_events_sync(c, [(e.topic, e.key, e.payload, e.event_id) for e in fan_events])


def _erase(c: sqlite3.Connection, conversation_id: str, sequence: int,
           delete_time: float) -> None:
    c.execute("UPDATE messages SET delete_time = ?, sender_key_ciphertext = NULL"
              " WHERE conversation_id = ? AND sequence = ?",
              (delete_time, conversation_id, sequence))
    c.execute("DELETE FROM envelopes WHERE conversation_id = ? AND sequence = ?",
              (conversation_id, sequence))


def _case(column_ids: Sequence[str], values: dict) -> tuple[str, list]:
    return (" ".join("WHEN ? THEN ?" for _ in column_ids),
            [v for i in column_ids for v in (i, values[i])])


# -- sends ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Append:
    message: NewMessage
    expected_version: int
    deliveries: Sequence[Recipient]
    now: float
    events: EventsFor


def _append_many(c: sqlite3.Connection, items: list[_Append]) -> list:
    existing = {r[0]: _msg(r) for r in _select_in(
        c, f"SELECT {_MSG_COLS} FROM messages WHERE id IN ({{}})",
        list(dict.fromkeys(it.message.id for it in items)))}
    convs = {r[0]: [r[1], r[2], bool(r[3]), r[4]] for r in _select_in(
        c, "SELECT id, last_sequence, version, closed, message_ttl_s FROM conversations"
           " WHERE id IN ({})", list(dict.fromkeys(it.message.conversation_id for it in items)))}
    results: list = []
    appended: dict[str, MessageRow] = {}
    touched: dict[str, int] = {}
    active: dict[str, float] = {}
    msg_rows, env_rows, entries, events = [], [], [], []
    senders: dict[str, str] = {}
    for it in items:
        m = it.message
        found = existing.get(m.id) or appended.get(m.id)
        if found is not None:
            results.append(Existing(found))
            continue
        conv = convs.get(m.conversation_id)
        if conv is None or conv[1] != it.expected_version or conv[2]:
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
        touched[m.conversation_id] = row.sequence
        active[m.conversation_id] = it.now
        msg_rows.append((row.id, row.conversation_id, row.sequence, int(row.kind),
                         row.sender_user, row.sender_device, row.create_time, row.expire_time,
                         None, row.content_hash, row.sender_key_ciphertext, None,
                         row.envelope_count, row.ciphertext_bytes))
        env_rows += [(m.conversation_id, row.sequence, e.device_id, e.user_id, e.type,
                      e.ciphertext, e.ciphertext_sha256) for e in m.envelopes]
        senders.setdefault(m.sender_device, m.sender_user)
        start = len(entries)
        entries += [NewEntry(d.user_id, d.device_id, EntryKind.MESSAGE, m.conversation_id,
                             message_id=m.id, message_seq=row.sequence,
                             sender_user=m.sender_user) for d in it.deliveries]
        events += it.events(row)
        results.append((row, start, len(entries)))
    if touched:
        ids = list(touched)
        seq_case, seq_params = _case(ids, touched)
        time_case, time_params = _case(ids, active)
        c.execute(f"UPDATE conversations SET last_sequence = CASE id {seq_case} END,"
                  f" last_activity_time = CASE id {time_case} END"
                  f" WHERE id IN ({','.join('?' * len(ids))})",
                  [*seq_params, *time_params, *ids])
    _insert(c, f"INSERT INTO messages ({_MSG_COLS}) VALUES", _N_MSG, msg_rows)
    _insert(c, "INSERT INTO envelopes (conversation_id, sequence, device_id, user_id, type,"
               " ciphertext, ciphertext_sha256) VALUES", 7, env_rows)
    queued = _queue(c, entries, max(it.now for it in items), ensure=senders)
    _outbox(c, events)
    return [Appended(r[0], [q for q in queued[r[1]:r[2]] if q is not None])
            if isinstance(r, tuple) else r for r in results]


# -- acknowledgements -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Ack:
    user_id: str
    device_id: str
    up_to: int
    now: float
    plan: AckPlanner


def _ack_many(c: sqlite3.Connection, items: list[_Ack]) -> list:
    heads = {r[0]: [r[1], r[2]] for r in _select_in(
        c, "SELECT device_id, last_seq, acked_seq FROM inboxes WHERE device_id IN ({})",
        list(dict.fromkeys(it.device_id for it in items)))}
    results: list = [None] * len(items)
    ranges: list[tuple[int, str, int, int]] = []  # (item, device, after, up_to)
    for i, it in enumerate(items):
        last_seq, acked = heads.get(it.device_id, (0, 0))
        if it.up_to > last_seq:
            results[i] = CursorAhead(last_seq)
        elif it.up_to > acked:
            ranges.append((i, it.device_id, acked, it.up_to))
            heads[it.device_id][1] = it.up_to
    removed: dict[int, list] = {i: [] for i, *_ in ranges}
    counts: dict[str, int] = {}
    for k in range(0, len(ranges), 100):
        chunk = ranges[k:k + 100]
        where = " OR ".join("(device_id = ? AND seq > ? AND seq <= ?)" for _ in chunk)
        rows = c.execute(
            f"DELETE FROM inbox WHERE {where} RETURNING device_id, seq, kind,"
            " conversation_id, message_id, message_seq, sender_user",
            [v for _, d, a, u in chunk for v in (d, a, u)]).fetchall()
        for r in rows:
            counts[r[0]] = counts.get(r[0], 0) + 1
            for i, d, a, u in chunk:
                if d == r[0] and a < r[1] <= u:
                    removed[i].append(r)
                    break
    if counts:
        devices = list(counts)
        acked_case, acked_params = _case(devices, {d: heads[d][1] for d in devices})
        count_case, count_params = _case(devices, counts)
        c.execute(f"UPDATE inboxes SET acked_seq = CASE device_id {acked_case} END,"
                  f" pending = pending - CASE device_id {count_case} END"
                  f" WHERE device_id IN ({','.join('?' * len(devices))})",
                  [*acked_params, *count_params, *devices])
    # A range with nothing left to delete (a revoked inbox) still moves acked_seq.
    for d in dict.fromkeys(d for _, d, _, _ in ranges):
        if d not in counts:
            c.execute("UPDATE inboxes SET acked_seq = ? WHERE device_id = ?", (heads[d][1], d))
    # First deliveries: a receipt row per (message, recipient user) the first time.
    candidates = []
    for i, rows in removed.items():
        it = items[i]
        for r in sorted(rows, key=lambda r: r[1]):
            if r[2] == EntryKind.MESSAGE and r[6] and r[6] != it.user_id:
                candidates.append((r[3], r[5], it.user_id, it.now))
    first = {tuple(r) for r in _insert(
        c, "INSERT INTO receipts (conversation_id, sequence, user_id, deliver_time) VALUES", 4,
        list(dict.fromkeys(candidates)),
        " ON CONFLICT (conversation_id, sequence, user_id) DO UPDATE SET"
        " deliver_time = excluded.deliver_time WHERE deliver_time IS NULL"
        " RETURNING conversation_id, sequence, user_id")}
    entries: list[NewEntry] = []
    spans: dict[int, tuple[int, int]] = {}
    senders = {r[6] for rows in removed.values() for r in rows if r[6]}
    devices_of = _devices_of(c, _devices_map(c, senders) if senders else None)
    events = []
    for i, rows in removed.items():
        it = items[i]
        delivered = []
        for r in sorted(rows, key=lambda r: r[1]):
            key = (r[3], r[5], it.user_id)
            if r[2] == EntryKind.MESSAGE and key in first:
                first.discard(key)  # two devices of one user in one batch: the first counts
                delivered.append(Delivered(r[4], r[3], r[5], r[6]))
        start = len(entries)
        if delivered:
            fan = it.plan(delivered, devices_of)
            entries += fan.entries
            events += fan.events
        spans[i] = (start, len(entries))
    queued = _queue(c, entries, max(it.now for it in items))
    _outbox(c, events)
    pending = dict(_select_in(c, "SELECT device_id, pending FROM inboxes"
                                 " WHERE device_id IN ({})",
                              list(dict.fromkeys(it.device_id for it in items))))
    for i, it in enumerate(items):
        if results[i] is None:
            a, b = spans.get(i, (0, 0))
            results[i] = Acknowledged(pending.get(it.device_id, 0),
                                      [q for q in queued[a:b] if q is not None])
    return results


class SqliteMessageStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    @classmethod
    async def open(cls, path: pathlib.Path, write_linger_s: float = 0.0) -> SqliteMessageStore:
        db = await SqliteDatabase.open(path, migrations=[MIGRATIONS])
        db.write_linger_s = write_linger_s
        return cls(db)

    async def close(self) -> None:
        await self.db.close()

    # -- writes ------------------------------------------------------------------------------

    async def change_conversation(self, change: ConversationWrite) -> Changed | Stale:
        def op(c: sqlite3.Connection) -> Changed | Stale:
            cid, now = change.conversation_id, change.now
            if change.change_id:
                r = c.execute("SELECT conversation_id, sequence FROM group_changes"
                              " WHERE change_id = ?", (change.change_id,)).fetchone()
                if r is not None:
                    state = _load(c, r[0])
                    assert state is not None
                    return Changed(state, r[1], (), replayed=True)
            if change.expected_version == 0:
                direct_key = (":".join(sorted(change.direct_users))
                              if change.type is ConversationType.DIRECT else None)
                cur = c.execute(
                    "INSERT INTO conversations (id, type, group_id, direct_key, create_time,"
                    " update_time, last_activity_time) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (cid, int(change.type),
                     cid if change.type is ConversationType.GROUP else "", direct_key,
                     now, now, now))
                if cur.rowcount != 1:
                    return Stale()
            else:
                cur = c.execute("UPDATE conversations SET version = version + 1,"
                                " update_time = ? WHERE id = ? AND version = ?",
                                (now, cid, change.expected_version))
                if cur.rowcount != 1:
                    return Stale()
            sequence = 0
            queued: list[QueuedEntry] = []
            for step in change.steps:
                sequence = c.execute(
                    "UPDATE conversations SET last_sequence = last_sequence + 1,"
                    " last_activity_time = ? WHERE id = ? RETURNING last_sequence",
                    (now, cid)).fetchone()[0]
                c.execute("INSERT INTO messages (conversation_id, sequence, id, kind,"
                          " create_time, system_event) VALUES (?, ?, ?, ?, ?, ?)",
                          (cid, sequence, step.message_id, int(MessageKind.SYSTEM), now,
                           step.system_event))
                if step.kind in (StepKind.CREATE, StepKind.ADD):
                    c.executemany("INSERT INTO members (conversation_id, user_id,"
                                  " joined_sequence) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                                  [(cid, u, sequence) for u in step.users])
                elif step.kind is StepKind.REMOVE:
                    c.executemany("DELETE FROM members WHERE conversation_id = ?"
                                  " AND user_id = ?", [(cid, u) for u in step.users])
                elif step.kind is StepKind.CLOSE:
                    c.execute("UPDATE conversations SET closed = 1 WHERE id = ?", (cid,))
                elif step.kind is StepKind.SETTINGS:
                    c.execute("UPDATE conversations SET message_ttl_s = ?,"
                              " settings_version = settings_version + 1 WHERE id = ?",
                              (change.message_ttl_s, cid))
                queued += [q for q in _queue(c, [
                    NewEntry(r.user_id, r.device_id, EntryKind.MESSAGE, cid,
                             message_id=step.message_id, message_seq=sequence)
                    for r in step.deliveries], now) if q is not None]
            if change.admins is not None:
                c.execute("UPDATE members SET admin = 0 WHERE conversation_id = ?", (cid,))
                c.executemany("UPDATE members SET admin = 1 WHERE conversation_id = ?"
                              " AND user_id = ?", [(cid, u) for u in sorted(change.admins)])
            if change.change_id:
                c.execute("INSERT INTO group_changes (change_id, conversation_id, sequence,"
                          " apply_time) VALUES (?, ?, ?, ?)",
                          (change.change_id, cid, sequence, now))
            state = _load(c, cid)
            assert state is not None
            return Changed(state, sequence, queued)

        return await self.db.write(op)

    async def append_message(self, message: NewMessage, *, expected_version: int,
                             deliveries: Sequence[Recipient], now: float,
                             events: EventsFor) -> Appended | Existing | Stale:
        return await self.db.write_many(_append_many, _Append(
            message, expected_version, deliveries, now, events))

    async def acknowledge(self, user_id: str, device_id: str, up_to: int, now: float,
                          plan: AckPlanner) -> Acknowledged | CursorAhead:
        return await self.db.write_many(_ack_many, _Ack(user_id, device_id, up_to, now, plan))

    async def mark_read(self, conversation_id: str, user_id: str, read_sequence: int,
                        now: float, record_read_time: bool,
                        plan: ReadPlanner) -> ReadMarked | NotMember | SequenceAhead:
        def op(c: sqlite3.Connection) -> ReadMarked | NotMember | SequenceAhead:
            r = c.execute("SELECT m.read_sequence, m.joined_sequence, c.last_sequence"
                          " FROM members m JOIN conversations c ON c.id = m.conversation_id"
                          " WHERE m.conversation_id = ? AND m.user_id = ?",
                          (conversation_id, user_id)).fetchone()
            if r is None:
                return NotMember()
            old, joined, last = r
            if read_sequence <= old:
                return ReadMarked(old, False, ())
            if read_sequence > last:
                return SequenceAhead(last)
            c.execute("UPDATE members SET read_sequence = ?, read_time = ?"
                      " WHERE conversation_id = ? AND user_id = ?",
                      (read_sequence, now, conversation_id, user_id))
            low = max(old, joined, read_sequence - READ_SPAN)
            if record_read_time:
                c.execute(
                    "INSERT INTO receipts (conversation_id, sequence, user_id, read_time)"
                    " SELECT conversation_id, sequence, ?, ? FROM messages"
                    " WHERE conversation_id = ? AND sequence > ? AND sequence <= ?"
                    " AND sender_user NOT IN ('', ?)"
                    " ON CONFLICT (conversation_id, sequence, user_id) DO UPDATE"
                    " SET read_time = excluded.read_time WHERE read_time IS NULL",
                    (user_id, now, conversation_id, low, read_sequence, user_id))
            senders = [s[0] for s in c.execute(
                "SELECT DISTINCT sender_user FROM messages WHERE conversation_id = ?"
                " AND sequence > ? AND sequence <= ? AND sender_user NOT IN ('', ?)"
                " ORDER BY sender_user", (conversation_id, low, read_sequence, user_id))]
            fan = plan(old, read_sequence, senders, _devices_of(c))
            queued = [q for q in _queue(c, fan.entries, now) if q is not None]
            _outbox(c, fan.events)
            return ReadMarked(read_sequence, True, queued)

        return await self.db.write(op)

    async def delete_message(self, message_id: str, now: float) -> MessageRow | None:
        def op(c: sqlite3.Connection) -> MessageRow | None:
            r = c.execute(f"SELECT {_MSG_COLS} FROM messages WHERE id = ?",
                          (message_id,)).fetchone()
            if r is None:
                return None
            row = _msg(r)
            if row.delete_time is None:
                expired = row.expire_time is not None and row.expire_time <= now
                delete_time = row.expire_time if expired else now
                _erase(c, row.conversation_id, row.sequence, delete_time)
                row = dataclasses.replace(row, delete_time=delete_time,
                                          sender_key_ciphertext=None)
            return row

        return await self.db.write(op)

    async def expire_due(self, now: float, limit: int) -> int:
        def op(c: sqlite3.Connection) -> int:
            due = c.execute("SELECT conversation_id, sequence, expire_time FROM messages"
                            " WHERE expire_time <= ? AND delete_time IS NULL"
                            " ORDER BY expire_time LIMIT ?", (now, limit)).fetchall()
            for conversation_id, sequence, expire_time in due:
                _erase(c, conversation_id, sequence, expire_time)
            return len(due)

        return await self.db.write(op)

    async def open_inbox(self, user_id: str, device_id: str) -> InboxState:
        state = await self.inbox_state(device_id)
        if state is not None:
            return state

        def op(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO inboxes (device_id, user_id) VALUES (?, ?)"
                      " ON CONFLICT DO NOTHING", (device_id, user_id))

        await self.db.write(op)
        state = await self.inbox_state(device_id)
        assert state is not None
        return state

    async def forget_device(self, user_id: str, device_id: str) -> int:
        def op(c: sqlite3.Connection) -> int:
            dropped = c.execute("DELETE FROM inbox WHERE device_id = ?", (device_id,)).rowcount
            c.execute("INSERT INTO inboxes (device_id, user_id, revoked) VALUES (?, ?, 1)"
                      " ON CONFLICT (device_id) DO UPDATE SET revoked = 1, pending = 0",
                      (device_id, user_id))
            return dropped

        return await self.db.write(op)

    # -- reads -------------------------------------------------------------------------------

    async def load_conversation(self, conversation_id: str) -> ConversationState | None:
        return await self.db.read(lambda c: _load(c, conversation_id))

    async def get_conversation(self, conversation_id: str,
                               user_id: str) -> tuple[ConversationRow, int] | None:
        def q(c: sqlite3.Connection):
            r = c.execute(
                f"SELECT {_cols('c', _CONV_COLS.split(', '))}, COALESCE(m.read_sequence, 0)"
                " FROM conversations c LEFT JOIN members m ON m.conversation_id = c.id"
                " AND m.user_id = ? WHERE c.id = ?", (user_id, conversation_id)).fetchone()
            return None if r is None else (_conv(r), r[12])

        return await self.db.read(q)

    async def find_direct(self, user_a: str, user_b: str) -> ConversationRow | None:
        key = ":".join(sorted((user_a, user_b)))

        def q(c: sqlite3.Connection):
            r = c.execute(f"SELECT {_CONV_COLS} FROM conversations WHERE direct_key = ?",
                          (key,)).fetchone()
            return None if r is None else _conv(r)

        return await self.db.read(q)

    async def list_conversations(self, user_id: str, after: tuple[float, str] | None,
                                 limit: int) -> list[tuple[ConversationRow, int]]:
        sql = (f"SELECT {_cols('c', _CONV_COLS.split(', '))}, m.read_sequence FROM members m"
               " JOIN conversations c ON c.id = m.conversation_id WHERE m.user_id = ?")
        params: list = [user_id]
        if after is not None:
            sql += (" AND (c.last_activity_time < ? OR (c.last_activity_time = ?"
                    " AND c.id < ?))")
            params += [after[0], after[0], after[1]]
        sql += " ORDER BY c.last_activity_time DESC, c.id DESC LIMIT ?"
        params.append(limit)
        return await self.db.read(
            lambda c: [(_conv(r), r[12]) for r in c.execute(sql, params)])

    async def get_message(self, message_id: str) -> MessageRow | None:
        def q(c: sqlite3.Connection):
            r = c.execute(f"SELECT {_MSG_COLS} FROM messages WHERE id = ?",
                          (message_id,)).fetchone()
            return None if r is None else _msg(r)

        return await self.db.read(q)

    async def get_envelopes(self, conversation_id: str, sequence: int,
                            device_id: str | None) -> list[EnvelopeRow]:
        sql = (f"SELECT {', '.join(_ENV_FIELDS)} FROM envelopes"
               " WHERE conversation_id = ? AND sequence = ?")
        params: list = [conversation_id, sequence]
        if device_id is not None:
            sql += " AND device_id = ?"
            params.append(device_id)
        return await self.db.read(lambda c: [_env(r) for r in c.execute(sql, params)])

    async def list_messages(self, conversation_id: str, device_id: str, *, min_sequence: int,
                            max_sequence: int, descending: bool,
                            limit: int) -> list[tuple[MessageRow, EnvelopeRow | None]]:
        sql = (f"SELECT {_cols('m', _MSG_FIELDS)}, {_cols('e', _ENV_FIELDS)} FROM messages m"
               " LEFT JOIN envelopes e ON e.conversation_id = m.conversation_id"
               " AND e.sequence = m.sequence AND e.device_id = ?"
               " WHERE m.conversation_id = ? AND m.sequence >= ? AND m.sequence <= ?"
               f" ORDER BY m.sequence {'DESC' if descending else 'ASC'} LIMIT ?")
        params = (device_id, conversation_id, min_sequence, max_sequence, limit)
        return await self.db.read(
            lambda c: [(_msg(r), _env(r, _N_MSG)) for r in c.execute(sql, params)])

    async def read_inbox(self, device_id: str, after_seq: int, limit: int) -> list[InboxItem]:
        sql = (f"SELECT i.seq, i.kind, i.conversation_id, i.payload, {_cols('m', _MSG_FIELDS)},"
               f" {_cols('e', _ENV_FIELDS)} FROM inbox i"
               " LEFT JOIN messages m ON m.conversation_id = i.conversation_id"
               " AND m.sequence = i.message_seq"
               " LEFT JOIN envelopes e ON e.conversation_id = i.conversation_id"
               " AND e.sequence = i.message_seq AND e.device_id = i.device_id"
               " WHERE i.device_id = ? AND i.seq > ? ORDER BY i.seq LIMIT ?")

        def q(c: sqlite3.Connection) -> list[InboxItem]:
            return [InboxItem(r[0], EntryKind(r[1]), r[2], bytes(r[3] or b""), _msg(r, 4),
                              _env(r, 4 + _N_MSG))
                    for r in c.execute(sql, (device_id, after_seq, limit))]

        return await self.db.read(q)

    async def inbox_state(self, device_id: str) -> InboxState | None:
        def q(c: sqlite3.Connection):
            r = c.execute("SELECT user_id, last_seq, acked_seq, pending, revoked FROM inboxes"
                          " WHERE device_id = ?", (device_id,)).fetchone()
            return None if r is None else InboxState(r[0], r[1], r[2], r[3], bool(r[4]))

        return await self.db.read(q)

    async def list_receipts(self, conversation_id: str, sequence: int, after_user: str,
                            limit: int) -> list[ReceiptRow]:
        return await self.db.read(lambda c: [ReceiptRow(*r) for r in c.execute(
            "SELECT user_id, deliver_time, read_time FROM receipts WHERE conversation_id = ?"
            " AND sequence = ? AND user_id > ? ORDER BY user_id LIMIT ?",
            (conversation_id, sequence, after_user, limit))])

    async def conversation_peers(self, user_id: str, candidates: Sequence[str]) -> set[str]:
        ids = list(dict.fromkeys(candidates))

        def q(c: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for i in range(0, len(ids), _SQL_CHUNK):
                chunk = ids[i:i + _SQL_CHUNK]
                marks = ",".join("?" * len(chunk))
                found.update(r[0] for r in c.execute(
                    "SELECT DISTINCT o.user_id FROM members me"
                    " JOIN conversations c ON c.id = me.conversation_id AND c.closed = 0"
                    " JOIN members o ON o.conversation_id = me.conversation_id"
                    f" WHERE me.user_id = ? AND o.user_id IN ({marks})", (user_id, *chunk)))
            return found

        return await self.db.read(q)

    async def group_change(self, change_id: str) -> tuple[str, int] | None:
        def q(c: sqlite3.Connection):
            r = c.execute("SELECT conversation_id, sequence FROM group_changes"
                          " WHERE change_id = ?", (change_id,)).fetchone()
            return None if r is None else (r[0], r[1])

        return await self.db.read(q)
