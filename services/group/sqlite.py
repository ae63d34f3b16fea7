"""SQLite adapter of the group store (embedded mode), on the runtime's SqliteDatabase.

Write transactions are BEGIN IMMEDIATE on the single writer connection, so they are
serialised; reads outside a transaction use the reader connection (WAL snapshot)."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import AsyncIterator, Sequence

import aiosqlite
from google.protobuf.message import Message

from services.group import rows
from services.group.rows import CHANGE_COLS, GROUP_COLS, INVITE_COLS, MEMBER_COLS
from services.group.store import (
    GroupRow,
    InviteRow,
    MemberRow,
    MembershipView,
    PendingChange,
    Role,
)
from services.runtime import outbox
from services.runtime.sqlite import SqliteDatabase

MIGRATIONS = pathlib.Path(__file__).parent / "migrations" / "sqlite"

_USABLE = "expire_time > ? AND (max_uses = 0 OR use_count < max_uses)"
_CHUNK = 500  # stay under SQLite's bound-parameter limit


async def _members_among(fetch, group_id: str, user_ids: Sequence[str]) -> dict[str, MemberRow]:
    out: dict[str, MemberRow] = {}
    ids = list(dict.fromkeys(user_ids))
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i:i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for r in await fetch(f"SELECT {MEMBER_COLS} FROM members m WHERE m.group_id = ?"
                             f" AND m.user_id IN ({marks})", (group_id, *chunk)):
            out[r["user_id"]] = rows.member(r)
    return out


async def _one(conn: aiosqlite.Connection, sql: str, params: Sequence = ()):
    async with conn.execute(sql, params) as cur:
        return await cur.fetchone()


async def _all(conn: aiosqlite.Connection, sql: str, params: Sequence = ()):
    async with conn.execute(sql, params) as cur:
        return list(await cur.fetchall())


class SqliteTx:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._c = conn

    # groups

    async def get_group(self, group_id: str) -> GroupRow | None:
        return rows.group(await _one(
            self._c, f"SELECT {GROUP_COLS} FROM groups g WHERE g.id = ?", (group_id,)))

    async def insert_group(self, group: GroupRow) -> None:
        await self._c.execute(
            "INSERT INTO groups (id, display_name, description, discoverable, owner_id,"
            " create_time, update_time, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (group.id, group.display_name, group.description, int(group.discoverable),
             group.owner_id, group.create_time, group.update_time, group.revision))

    async def update_group(self, group: GroupRow) -> None:
        await self._c.execute(
            "UPDATE groups SET display_name = ?, description = ?, discoverable = ?,"
            " owner_id = ?, update_time = ?, revision = ? WHERE id = ?",
            (group.display_name, group.description, int(group.discoverable), group.owner_id,
             group.update_time, group.revision, group.id))

    async def delete_group(self, group_id: str) -> None:
        # Members and invites go with it (ON DELETE CASCADE).
        await self._c.execute("DELETE FROM groups WHERE id = ?", (group_id,))

    async def count_owned_groups(self, user_id: str) -> int:
        r = await _one(self._c, "SELECT count(*) FROM groups WHERE owner_id = ?", (user_id,))
        return int(r[0])

    # members

    async def get_member(self, group_id: str, user_id: str) -> MemberRow | None:
        return rows.member(await _one(
            self._c, f"SELECT {MEMBER_COLS} FROM members m WHERE m.group_id = ?"
            " AND m.user_id = ?", (group_id, user_id)))

    async def get_members(self, group_id: str, user_ids: Sequence[str]) -> dict[str, MemberRow]:
        return await _members_among(lambda sql, params: _all(self._c, sql, params), group_id,
                                    user_ids)

    async def list_all_members(self, group_id: str) -> list[MemberRow]:
        found = await _all(self._c, f"SELECT {MEMBER_COLS} FROM members m"
                           " WHERE m.group_id = ? ORDER BY m.seq", (group_id,))
        return [rows.member(r) for r in found]

    async def list_admins(self, group_id: str) -> list[str]:
        found = await _all(self._c, "SELECT user_id FROM members WHERE group_id = ?"
                           " AND role IN (1, 2) ORDER BY seq", (group_id,))
        return [r[0] for r in found]

    async def insert_members(self, members: Sequence[MemberRow]) -> list[MemberRow]:
        out = []
        for m in members:
            r = await _one(
                self._c,
                "INSERT INTO members (group_id, user_id, role, added_by, invite_id, join_time)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
                (m.group_id, m.user_id, int(m.role), m.added_by, m.invite_id, m.join_time))
            out.append(MemberRow(m.group_id, m.user_id, m.role, m.join_time, m.added_by,
                                 m.invite_id, r[0]))
        return out

    async def delete_members(self, group_id: str, user_ids: Sequence[str]) -> int:
        removed = 0
        ids = list(user_ids)
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            cur = await self._c.execute(
                f"DELETE FROM members WHERE group_id = ? AND user_id IN ({marks})",
                (group_id, *chunk))
            removed += cur.rowcount
        return removed

    async def set_role(self, group_id: str, user_id: str, role: Role) -> None:
        await self._c.execute("UPDATE members SET role = ? WHERE group_id = ? AND user_id = ?",
                              (int(role), group_id, user_id))

    # invites

    async def insert_invite(self, invite: InviteRow) -> InviteRow:
        r = await _one(
            self._c,
            "INSERT INTO invites (id, group_id, token_hash, creator_id, create_time,"
            " expire_time, max_uses, use_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING seq",
            (invite.id, invite.group_id, invite.token_hash, invite.creator_id,
             invite.create_time, invite.expire_time, invite.max_uses, invite.use_count))
        return InviteRow(invite.id, invite.group_id, invite.token_hash, invite.creator_id,
                         invite.create_time, invite.expire_time, invite.max_uses,
                         invite.use_count, r[0])

    async def get_invite(self, group_id: str, invite_id: str) -> InviteRow | None:
        return rows.invite(await _one(
            self._c, f"SELECT {INVITE_COLS} FROM invites WHERE group_id = ? AND id = ?",
            (group_id, invite_id)))

    async def get_invite_by_token_hash(self, token_hash: bytes) -> InviteRow | None:
        return rows.invite(await _one(
            self._c, f"SELECT {INVITE_COLS} FROM invites WHERE token_hash = ?", (token_hash,)))

    async def count_usable_invites(self, group_id: str, now: float) -> int:
        r = await _one(self._c, f"SELECT count(*) FROM invites WHERE group_id = ? AND {_USABLE}",
                       (group_id, now))
        return int(r[0])

    async def delete_invite(self, invite_id: str) -> None:
        await self._c.execute("DELETE FROM invites WHERE id = ?", (invite_id,))

    async def use_invite(self, invite_id: str, now: float) -> bool:
        cur = await self._c.execute(
            f"UPDATE invites SET use_count = use_count + 1 WHERE id = ? AND {_USABLE}",
            (invite_id, now))
        return cur.rowcount == 1

    async def purge_invites(self, group_id: str, expired_before: float) -> int:
        cur = await self._c.execute(
            "DELETE FROM invites WHERE group_id = ? AND expire_time < ?",
            (group_id, expired_before))
        return cur.rowcount

    # relay and events

    async def add_pending_change(self, change: PendingChange) -> None:
        await self._c.execute(
            "INSERT INTO pending_changes (change_id, group_id, request, create_time)"
            " VALUES (?, ?, ?, ?)",
            (change.change_id, change.group_id, change.request, change.create_time))

    async def add_event(self, topic: str, key: str, payload: Message, event_id: str) -> None:
        await outbox.add_event(self._c, topic, key, payload, event_id=event_id)


class SqliteGroupStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    @classmethod
    async def open(cls, path: pathlib.Path) -> SqliteGroupStore:
        return cls(await SqliteDatabase.open(path, migrations=[MIGRATIONS]))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTx]:
        async with self.db.transaction() as conn:
            yield SqliteTx(conn)

    async def get_group(self, group_id: str) -> GroupRow | None:
        return rows.group(await self.db.fetchone(
            f"SELECT {GROUP_COLS} FROM groups g WHERE g.id = ?", (group_id,)))

    async def get_member(self, group_id: str, user_id: str) -> MemberRow | None:
        return rows.member(await self.db.fetchone(
            f"SELECT {MEMBER_COLS} FROM members m WHERE m.group_id = ? AND m.user_id = ?",
            (group_id, user_id)))

    async def get_members(self, group_id: str, user_ids: Sequence[str]) -> dict[str, MemberRow]:
        return await _members_among(self.db.fetchall, group_id, user_ids)

    async def list_groups_of(self, user_id: str, *, before_seq: int | None,
                             limit: int) -> list[MembershipView]:
        sql = (f"SELECT {GROUP_COLS}, {MEMBER_COLS} FROM members m"
               " JOIN groups g ON g.id = m.group_id WHERE m.user_id = ?")
        params: list = [user_id]
        if before_seq is not None:
            sql += " AND m.seq < ?"
            params.append(before_seq)
        sql += " ORDER BY m.seq DESC LIMIT ?"
        params.append(limit)
        return [MembershipView(rows.group(r), rows.member(r))
                for r in await self.db.fetchall(sql, params)]

    async def list_members(self, group_id: str, *, after_seq: int | None,
                           limit: int) -> list[MemberRow]:
        sql = f"SELECT {MEMBER_COLS} FROM members m WHERE m.group_id = ?"
        params: list = [group_id]
        if after_seq is not None:
            sql += " AND m.seq > ?"
            params.append(after_seq)
        sql += " ORDER BY m.seq LIMIT ?"
        params.append(limit)
        return [rows.member(r) for r in await self.db.fetchall(sql, params)]

    async def list_usable_invites(self, group_id: str, now: float, *, after_seq: int | None,
                                  limit: int) -> list[InviteRow]:
        sql = f"SELECT {INVITE_COLS} FROM invites WHERE group_id = ? AND {_USABLE}"
        params: list = [group_id, now]
        if after_seq is not None:
            sql += " AND seq > ?"
            params.append(after_seq)
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)
        return [rows.invite(r) for r in await self.db.fetchall(sql, params)]

    # the relay

    async def pending_groups(self, limit: int) -> list[str]:
        found = await self.db.fetchall(
            "SELECT group_id, min(seq) AS first FROM pending_changes GROUP BY group_id"
            " ORDER BY first LIMIT ?", (limit,))
        return [r["group_id"] for r in found]

    async def pending_changes(self, group_id: str, limit: int) -> list[PendingChange]:
        found = await self.db.fetchall(
            f"SELECT {CHANGE_COLS} FROM pending_changes WHERE group_id = ? ORDER BY seq"
            " LIMIT ?", (group_id, limit))
        return [rows.change(r) for r in found]

    async def acquire_relay_lease(self, group_id: str, holder: str, now: float,
                                  until: float) -> bool:
        async with self.db.transaction() as tx:
            cur = await tx.execute(
                "INSERT INTO relay_leases (group_id, holder, expire_time) VALUES (?, ?, ?)"
                " ON CONFLICT (group_id) DO UPDATE SET holder = excluded.holder,"
                " expire_time = excluded.expire_time"
                " WHERE relay_leases.holder = excluded.holder OR relay_leases.expire_time <= ?",
                (group_id, holder, until, now))
            return cur.rowcount == 1

    async def complete_change(self, seq: int) -> None:
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM pending_changes WHERE seq = ?", (seq,))

    async def release_relay_lease(self, group_id: str, holder: str) -> None:
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM relay_leases WHERE group_id = ? AND holder = ?",
                             (group_id, holder))

    async def close(self) -> None:
        await self.db.close()
