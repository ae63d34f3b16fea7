"""SQLite adapter of the message store (embedded mode).

Every write operation is a synchronous function handed to `SqliteDatabase.write`: the
runtime's single writer thread runs concurrent operations in one transaction (one SAVEPOINT
each) and commits them together, so a burst of sends or acknowledgements costs one thread
hop and one commit, not one per statement and per call. Reads run on reader threads in one
hop per call, inside a read transaction (one WAL snapshot)."""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import Sequence

from services.messaging.store import (
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
    Fanout,
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

_CONV_COLS = ("id, type, group_id, direct_key, message_ttl_s, create_time, update_time,"
              " last_sequence, last_activity_time, closed, version, settings_version")
_MSG_FIELDS = ("id", "conversation_id", "sequence", "kind", "sender_user", "sender_device",
               "create_time", "expire_time", "delete_time", "content_hash",
               "sender_key_ciphertext", "system_event", "envelope_count", "ciphertext_bytes")
_ENV_FIELDS = ("user_id", "device_id", "type", "ciphertext", "ciphertext_sha256")
_MSG_COLS = ", ".join(_MSG_FIELDS)
_N_MSG = len(_MSG_FIELDS)
_SQL_CHUNK = 500  # stay under SQLite's bound-parameter limit


def _cols(alias: str, fields: Sequence[str]) -> str:
    return ", ".join(f"{alias}.{f}" for f in fields)


def _conv(r, offset: int = 0) -> ConversationRow:
    direct_key = r[offset + 3]
    return ConversationRow(
        id=r[offset], type=ConversationType(r[offset + 1]), group_id=r[offset + 2],
        direct_users=tuple(direct_key.split(":")) if direct_key else (),
        message_ttl_s=r[offset + 4], create_time=r[offset + 5], update_time=r[offset + 6],
        last_sequence=r[offset + 7], last_activity_time=r[offset + 8],
        closed=bool(r[offset + 9]), version=r[offset + 10], settings_version=r[offset + 11])


def _msg(r, offset: int = 0) -> MessageRow | None:
    if r[offset] is None:
        return None
    sk, se = r[offset + 10], r[offset + 11]
    return MessageRow(
        id=r[offset], conversation_id=r[offset + 1], sequence=r[offset + 2],
        kind=MessageKind(r[offset + 3]), sender_user=r[offset + 4],
        sender_device=r[offset + 5], create_time=r[offset + 6], expire_time=r[offset + 7],
        delete_time=r[offset + 8], content_hash=bytes(r[offset + 9]),
        sender_key_ciphertext=None if sk is None else bytes(sk),
        system_event=None if se is None else bytes(se), envelope_count=r[offset + 12],
        ciphertext_bytes=r[offset + 13])


def _env(r, offset: int = 0) -> EnvelopeRow | None:
    if r[offset] is None:
        return None
    return EnvelopeRow(r[offset], r[offset + 1], r[offset + 2], bytes(r[offset + 3]),
                       bytes(r[offset + 4]))


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


def _devices_of(c: sqlite3.Connection):
    def devices_of(user_id: str) -> list[str]:
        return [r[0] for r in c.execute(
            "SELECT device_id FROM inboxes WHERE user_id = ? AND revoked = 0"
            " ORDER BY device_id", (user_id,))]
    return devices_of


def _queue(c: sqlite3.Connection, entries: Sequence[NewEntry], now: float) -> list[QueuedEntry]:
    """Queue entries, allocating each device's next inbox seq in this transaction. A revoked
    device's inbox takes nothing (the upsert's WHERE fails and RETURNING yields no row)."""
    queued: list[QueuedEntry] = []
    rows = []
    for e in entries:
        r = c.execute(
            "INSERT INTO inboxes (device_id, user_id, last_seq, pending) VALUES (?, ?, 1, 1)"
            " ON CONFLICT (device_id) DO UPDATE SET last_seq = last_seq + 1,"
            " pending = pending + 1 WHERE revoked = 0 RETURNING last_seq",
            (e.device_id, e.user_id)).fetchone()
        if r is None:
            continue
        rows.append((e.device_id, r[0], int(e.kind), e.conversation_id, e.message_id or None,
                     e.sender_user, e.payload or None, now))
        queued.append(QueuedEntry(r[0], e))
    if rows:
        c.executemany(
            "INSERT INTO inbox (device_id, seq, kind, conversation_id, message_id,"
            " sender_user, payload, create_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return queued


def _outbox(c: sqlite3.Connection, fan_events) -> None:
    add_events_sync(c, [(e.topic, e.key, e.payload, e.event_id) for e in fan_events])


def _erase(c: sqlite3.Connection, message_id: str, delete_time: float) -> None:
    c.execute("UPDATE messages SET delete_time = ?, sender_key_ciphertext = NULL"
              " WHERE id = ?", (delete_time, message_id))
    c.execute("DELETE FROM envelopes WHERE message_id = ?", (message_id,))


class SqliteMessageStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    @classmethod
    async def open(cls, path: pathlib.Path) -> SqliteMessageStore:
        return cls(await SqliteDatabase.open(path, migrations=[MIGRATIONS]))

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
                c.execute("INSERT INTO messages (id, conversation_id, sequence, kind,"
                          " create_time, system_event) VALUES (?, ?, ?, ?, ?, ?)",
                          (step.message_id, cid, sequence, int(MessageKind.SYSTEM), now,
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
                queued += _queue(c, [
                    NewEntry(r.user_id, r.device_id, EntryKind.MESSAGE, cid,
                             message_id=step.message_id) for r in step.deliveries], now)
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
                             deliveries: Sequence[Recipient], receipt_users: Sequence[str],
                             now: float, events: EventsFor) -> Appended | Existing | Stale:
        m = message

        def op(c: sqlite3.Connection) -> Appended | Existing | Stale:
            r = c.execute(f"SELECT {_MSG_COLS} FROM messages WHERE id = ?",
                          (m.id,)).fetchone()
            if r is not None:
                return Existing(_msg(r))
            r = c.execute(
                "UPDATE conversations SET last_sequence = last_sequence + 1,"
                " last_activity_time = ? WHERE id = ? AND version = ? AND closed = 0"
                " RETURNING last_sequence, message_ttl_s",
                (now, m.conversation_id, expected_version)).fetchone()
            if r is None:
                return Stale()
            sequence, ttl = r
            row = MessageRow(
                id=m.id, conversation_id=m.conversation_id, sequence=sequence, kind=m.kind,
                sender_user=m.sender_user, sender_device=m.sender_device, create_time=now,
                expire_time=None if ttl is None else now + ttl, delete_time=None,
                content_hash=m.content_hash, sender_key_ciphertext=m.sender_key_ciphertext,
                system_event=None, envelope_count=len(m.envelopes),
                ciphertext_bytes=m.ciphertext_bytes)
            c.execute(
                f"INSERT INTO messages ({_MSG_COLS}) VALUES"
                f" ({', '.join('?' * _N_MSG)})",
                (row.id, row.conversation_id, row.sequence, int(row.kind), row.sender_user,
                 row.sender_device, row.create_time, row.expire_time, None, row.content_hash,
                 row.sender_key_ciphertext, None, row.envelope_count, row.ciphertext_bytes))
            if m.envelopes:
                c.executemany(
                    "INSERT INTO envelopes (message_id, user_id, device_id, type, ciphertext,"
                    " ciphertext_sha256) VALUES (?, ?, ?, ?, ?, ?)",
                    [(m.id, e.user_id, e.device_id, e.type, e.ciphertext, e.ciphertext_sha256)
                     for e in m.envelopes])
            if receipt_users:
                c.executemany("INSERT INTO receipts (message_id, user_id) VALUES (?, ?)",
                              [(m.id, u) for u in receipt_users])
            c.execute("INSERT INTO inboxes (device_id, user_id) VALUES (?, ?)"
                      " ON CONFLICT DO NOTHING", (m.sender_device, m.sender_user))
            queued = _queue(c, [
                NewEntry(d.user_id, d.device_id, EntryKind.MESSAGE, m.conversation_id,
                         message_id=m.id, sender_user=m.sender_user) for d in deliveries], now)
            _outbox(c, events(row))
            return Appended(row, queued)

        return await self.db.write(op)

    async def acknowledge(self, user_id: str, device_id: str, up_to: int, now: float,
                          plan: AckPlanner) -> Acknowledged | CursorAhead:
        def op(c: sqlite3.Connection) -> Acknowledged | CursorAhead:
            st = c.execute("SELECT last_seq, acked_seq, pending FROM inboxes"
                           " WHERE device_id = ?", (device_id,)).fetchone()
            last_seq, acked_seq, pending = st if st is not None else (0, 0, 0)
            if up_to > last_seq:
                return CursorAhead(last_seq)
            if up_to <= acked_seq:
                return Acknowledged(pending, ())
            removed = sorted(c.execute(
                "DELETE FROM inbox WHERE device_id = ? AND seq <= ?"
                " RETURNING seq, kind, conversation_id, message_id, sender_user",
                (device_id, up_to)).fetchall(), key=lambda r: r[0])
            c.execute("UPDATE inboxes SET acked_seq = ?, pending = pending - ?"
                      " WHERE device_id = ?", (up_to, len(removed), device_id))
            delivered: list[Delivered] = []
            for _seq, kind, conversation_id, message_id, sender in removed:
                if kind != EntryKind.MESSAGE or not sender or sender == user_id:
                    continue
                cur = c.execute("UPDATE receipts SET deliver_time = ? WHERE message_id = ?"
                                " AND user_id = ? AND deliver_time IS NULL",
                                (now, message_id, user_id))
                if cur.rowcount == 1:
                    delivered.append(Delivered(message_id, conversation_id, sender))
            queued: list[QueuedEntry] = []
            if delivered:
                fan: Fanout = plan(delivered, _devices_of(c))
                queued = _queue(c, fan.entries, now)
                _outbox(c, fan.events)
            left = c.execute("SELECT pending FROM inboxes WHERE device_id = ?",
                             (device_id,)).fetchone()
            return Acknowledged(left[0], queued)

        return await self.db.write(op)

    async def mark_read(self, conversation_id: str, user_id: str, read_sequence: int,
                        now: float, record_read_time: bool,
                        plan: ReadPlanner) -> ReadMarked | NotMember | SequenceAhead:
        def op(c: sqlite3.Connection) -> ReadMarked | NotMember | SequenceAhead:
            r = c.execute("SELECT m.read_sequence, c.last_sequence FROM members m"
                          " JOIN conversations c ON c.id = m.conversation_id"
                          " WHERE m.conversation_id = ? AND m.user_id = ?",
                          (conversation_id, user_id)).fetchone()
            if r is None:
                return NotMember()
            old, last = r
            if read_sequence <= old:
                return ReadMarked(old, False, ())
            if read_sequence > last:
                return SequenceAhead(last)
            c.execute("UPDATE members SET read_sequence = ?, read_time = ?"
                      " WHERE conversation_id = ? AND user_id = ?",
                      (read_sequence, now, conversation_id, user_id))
            if record_read_time:
                c.execute(
                    "UPDATE receipts SET read_time = ? WHERE user_id = ? AND read_time IS NULL"
                    " AND message_id IN (SELECT id FROM messages WHERE conversation_id = ?"
                    " AND sequence > ? AND sequence <= ?)",
                    (now, user_id, conversation_id, old, read_sequence))
            senders = [s[0] for s in c.execute(
                "SELECT DISTINCT sender_user FROM messages WHERE conversation_id = ?"
                " AND sequence > ? AND sequence <= ? AND sender_user NOT IN ('', ?)"
                " ORDER BY sender_user", (conversation_id, old, read_sequence, user_id))]
            fan = plan(old, read_sequence, senders, _devices_of(c))
            queued = _queue(c, fan.entries, now)
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
                _erase(c, message_id, row.expire_time if expired else now)
                r = c.execute(f"SELECT {_MSG_COLS} FROM messages WHERE id = ?",
                              (message_id,)).fetchone()
                row = _msg(r)
            return row

        return await self.db.write(op)

    async def expire_due(self, now: float, limit: int) -> int:
        def op(c: sqlite3.Connection) -> int:
            due = c.execute("SELECT id, expire_time FROM messages WHERE expire_time <= ?"
                            " AND delete_time IS NULL ORDER BY expire_time LIMIT ?",
                            (now, limit)).fetchall()
            for message_id, expire_time in due:
                _erase(c, message_id, expire_time)
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

    async def get_envelopes(self, message_id: str,
                            device_id: str | None) -> list[EnvelopeRow]:
        sql = f"SELECT {', '.join(_ENV_FIELDS)} FROM envelopes WHERE message_id = ?"
        params: list = [message_id]
        if device_id is not None:
            sql += " AND device_id = ?"
            params.append(device_id)
        return await self.db.read(lambda c: [_env(r) for r in c.execute(sql, params)])

    async def list_messages(self, conversation_id: str, device_id: str, *, min_sequence: int,
                            max_sequence: int, descending: bool,
                            limit: int) -> list[tuple[MessageRow, EnvelopeRow | None]]:
        sql = (f"SELECT {_cols('m', _MSG_FIELDS)}, {_cols('e', _ENV_FIELDS)} FROM messages m"
               " LEFT JOIN envelopes e ON e.message_id = m.id AND e.device_id = ?"
               " WHERE m.conversation_id = ? AND m.sequence >= ? AND m.sequence <= ?"
               f" ORDER BY m.sequence {'DESC' if descending else 'ASC'} LIMIT ?")
        params = (device_id, conversation_id, min_sequence, max_sequence, limit)
        return await self.db.read(
            lambda c: [(_msg(r), _env(r, _N_MSG)) for r in c.execute(sql, params)])

    async def read_inbox(self, device_id: str, after_seq: int, limit: int) -> list[InboxItem]:
        sql = (f"SELECT i.seq, i.kind, i.conversation_id, i.payload, {_cols('m', _MSG_FIELDS)},"
               f" {_cols('e', _ENV_FIELDS)} FROM inbox i"
               " LEFT JOIN messages m ON m.id = i.message_id"
               " LEFT JOIN envelopes e ON e.message_id = i.message_id"
               " AND e.device_id = i.device_id"
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

    async def list_receipts(self, message_id: str, after_user: str,
                            limit: int) -> list[ReceiptRow]:
        return await self.db.read(lambda c: [ReceiptRow(*r) for r in c.execute(
            "SELECT user_id, deliver_time, read_time FROM receipts WHERE message_id = ?"
            " AND user_id > ? ORDER BY user_id LIMIT ?", (message_id, after_user, limit))])

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
