"""PostgreSQL adapter of the group store (distributed mode), on the runtime's PostgresDatabase.

Several replicas write at once, so the serialisation SQLite gets from its single writer is
made explicit here, under READ COMMITTED:
- The group row is the lock of everything in the group. `GroupTx.get_group` locks it
  (`SELECT ... FOR UPDATE`) before reading anything, so every transaction that changes a
  group (settings, members, roles, invites, its pending relay rows) waits for the previous
  one to commit and then reads what it wrote: role checks, member counts (max_members),
  usable-invite counts (max_active_invites), succession and ownership transfers are decided
  on the current state, as with SQLite. The lock and the read are two statements on purpose:
  a statement's snapshot is taken before it waits for a lock, so a count read in the locking
  statement would miss the rows the transaction it waited for committed.
- `get_invite_by_token_hash` (JoinGroup's first read) locks the invite's group before it
  reads the invite, so a join sees every earlier change to that group (a revoked invite is
  not found, a deleted group has no invites) and locks in the same order as everything
  else (group, then its rows): no deadlock with DeleteInvite or CreateInvite.
- An invite use is one compare-and-set statement (`UPDATE ... WHERE use_count < max_uses`,
  status `UPDATE 1`), exact even without the group lock.
- `count_owned_groups` first takes a transaction-scoped advisory lock on (schema, user), so
  two CreateGroups by one user take turns between counting and inserting and
  max_owned_groups holds exactly. There is no owner row to lock (users live in auth), and a
  lock row per user would be a table that only grows; a hashtext collision between two
  users only makes their group creations take turns.
- Membership and role uniqueness are the constraints' (UNIQUE (group_id, user_id), one OWNER
  per group by a partial unique index), whatever the code does.
- pending_changes rows of one group are written under its lock, so their `seq` (one
  sequence, CACHE 1) follows commit order; the relay lease is one conditional upsert
  (`INSERT ... ON CONFLICT DO UPDATE ... WHERE <free or ours>`, status `INSERT 0 1`), which
  PostgreSQL evaluates on the latest row version under the row lock: one holder at a time.
- groups.created goes through the runtime's outbox in the same transaction."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import asyncpg
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
from services.runtime.config import Settings
from services.runtime.postgres import PostgresDatabase, open_service_database

SERVICE = "group"
# Advisory-lock namespace of the owner lock (the runtime's are 0x7A6B000x); the second key
# is hashtext(<schema>/<user id>).
LOCK_OWNER = 0x7A6B0101

_USABLE = "expire_time > $2 AND (max_uses = 0 OR use_count < max_uses)"


def _count(status: str) -> int:
    """The row count of a command status such as `DELETE 3`."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresGroupTx:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._c = conn
        self._locked: set[str] = set()  # groups whose row this transaction holds

    async def _lock_group(self, group_id: str) -> bool:
        """Lock the group's row until the transaction ends; False if there is no such group."""
        if group_id in self._locked:
            return True
        if await self._c.fetchval("SELECT 1 FROM groups WHERE id = $1 FOR UPDATE",
                                  group_id) is None:
            return False
        self._locked.add(group_id)
        return True

    # groups

    async def get_group(self, group_id: str) -> GroupRow | None:
        if not await self._lock_group(group_id):
            return None
        # A new statement, so a new snapshot: it sees what the lock's previous holder wrote.
        return rows.group(await self._c.fetchrow(
            f"SELECT {GROUP_COLS} FROM groups g WHERE g.id = $1", group_id))

    async def insert_group(self, group: GroupRow) -> None:
        await self._c.execute(
            "INSERT INTO groups (id, display_name, description, discoverable, owner_id,"
            " create_time, update_time, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            group.id, group.display_name, group.description, group.discoverable,
            group.owner_id, group.create_time, group.update_time, group.revision)
        # Nobody else sees the row before we commit: as good as locked.
        self._locked.add(group.id)

    async def update_group(self, group: GroupRow) -> None:
        await self._c.execute(
            "UPDATE groups SET display_name = $1, description = $2, discoverable = $3,"
            " owner_id = $4, update_time = $5, revision = $6 WHERE id = $7",
            group.display_name, group.description, group.discoverable, group.owner_id,
            group.update_time, group.revision, group.id)

    async def delete_group(self, group_id: str) -> None:
        # Members and invites go with it (ON DELETE CASCADE).
        await self._c.execute("DELETE FROM groups WHERE id = $1", group_id)

    async def count_owned_groups(self, user_id: str) -> int:
        # Held until commit: the next CreateGroup of this user counts after our insert.
        await self._c.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(current_schema() || '/' || $2))",
            LOCK_OWNER, user_id)
        return await self._c.fetchval("SELECT count(*) FROM groups WHERE owner_id = $1",
                                      user_id)

    # members

    async def get_member(self, group_id: str, user_id: str) -> MemberRow | None:
        return rows.member(await self._c.fetchrow(
            f"SELECT {MEMBER_COLS} FROM members m WHERE m.group_id = $1 AND m.user_id = $2",
            group_id, user_id))

    async def get_members(self, group_id: str, user_ids: Sequence[str]) -> dict[str, MemberRow]:
        return await _members_among(self._c.fetch, group_id, user_ids)

    async def list_all_members(self, group_id: str) -> list[MemberRow]:
        found = await self._c.fetch(
            f"SELECT {MEMBER_COLS} FROM members m WHERE m.group_id = $1 ORDER BY m.seq",
            group_id)
        return [rows.member(r) for r in found]

    async def list_admins(self, group_id: str) -> list[str]:
        found = await self._c.fetch(
            "SELECT user_id FROM members WHERE group_id = $1 AND role IN (1, 2) ORDER BY seq",
            group_id)
        return [r["user_id"] for r in found]

    async def insert_members(self, members: Sequence[MemberRow]) -> list[MemberRow]:
        if not members:
            return []
        # One statement; ORDER BY the input position, so the identity hands out increasing
        # seqs in the given order.
        found = await self._c.fetch(
            "INSERT INTO members (group_id, user_id, role, added_by, invite_id, join_time)"
            " SELECT g, u, r, a, i, t FROM unnest($1::text[], $2::text[], $3::smallint[],"
            " $4::text[], $5::text[], $6::float8[]) WITH ORDINALITY AS x(g, u, r, a, i, t, n)"
            " ORDER BY n RETURNING group_id, user_id, seq",
            [m.group_id for m in members], [m.user_id for m in members],
            [int(m.role) for m in members], [m.added_by for m in members],
            [m.invite_id for m in members], [m.join_time for m in members])
        seqs = {(r["group_id"], r["user_id"]): r["seq"] for r in found}
        return [MemberRow(m.group_id, m.user_id, m.role, m.join_time, m.added_by, m.invite_id,
                          seqs[m.group_id, m.user_id]) for m in members]

    async def delete_members(self, group_id: str, user_ids: Sequence[str]) -> int:
        return _count(await self._c.execute(
            "DELETE FROM members WHERE group_id = $1 AND user_id = ANY($2::text[])",
            group_id, list(user_ids)))

    async def set_role(self, group_id: str, user_id: str, role: Role) -> None:
        await self._c.execute(
            "UPDATE members SET role = $1 WHERE group_id = $2 AND user_id = $3",
            int(role), group_id, user_id)

    # invites

    async def insert_invite(self, invite: InviteRow) -> InviteRow:
        seq = await self._c.fetchval(
            "INSERT INTO invites (id, group_id, token_hash, creator_id, create_time,"
            " expire_time, max_uses, use_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " RETURNING seq",
            invite.id, invite.group_id, bytes(invite.token_hash), invite.creator_id,
            invite.create_time, invite.expire_time, invite.max_uses, invite.use_count)
        return InviteRow(invite.id, invite.group_id, invite.token_hash, invite.creator_id,
                         invite.create_time, invite.expire_time, invite.max_uses,
                         invite.use_count, seq)

    async def get_invite(self, group_id: str, invite_id: str) -> InviteRow | None:
        return rows.invite(await self._c.fetchrow(
            f"SELECT {INVITE_COLS} FROM invites WHERE group_id = $1 AND id = $2",
            group_id, invite_id))

    async def get_invite_by_token_hash(self, token_hash: bytes) -> InviteRow | None:
        # Lock the group first (see the module docstring), then read the invite afresh.
        group_id = await self._c.fetchval(
            "SELECT g.id FROM invites i JOIN groups g ON g.id = i.group_id"
            " WHERE i.token_hash = $1 FOR UPDATE OF g", bytes(token_hash))
        if group_id is None:
            return None
        self._locked.add(group_id)
        return rows.invite(await self._c.fetchrow(
            f"SELECT {INVITE_COLS} FROM invites WHERE token_hash = $1", bytes(token_hash)))

    async def count_usable_invites(self, group_id: str, now: float) -> int:
        return await self._c.fetchval(
            f"SELECT count(*) FROM invites WHERE group_id = $1 AND {_USABLE}", group_id, now)

    async def delete_invite(self, invite_id: str) -> None:
        await self._c.execute("DELETE FROM invites WHERE id = $1", invite_id)

    async def use_invite(self, invite_id: str, now: float) -> bool:
        status = await self._c.execute(
            f"UPDATE invites SET use_count = use_count + 1 WHERE id = $1 AND {_USABLE}",
            invite_id, now)
        return status == "UPDATE 1"

    async def purge_invites(self, group_id: str, expired_before: float) -> int:
        return _count(await self._c.execute(
            "DELETE FROM invites WHERE group_id = $1 AND expire_time < $2",
            group_id, expired_before))

    # relay and events

    async def add_pending_change(self, change: PendingChange) -> None:
        await self._c.execute(
            "INSERT INTO pending_changes (change_id, group_id, request, create_time)"
            " VALUES ($1, $2, $3, $4)",
            change.change_id, change.group_id, bytes(change.request), change.create_time)

    async def add_event(self, topic: str, key: str, payload: Message, event_id: str) -> None:
        await outbox.add_event(self._c, topic, key, payload, event_id=event_id)


async def _members_among(fetch, group_id: str, user_ids: Sequence[str]) -> dict[str, MemberRow]:
    found = await fetch(
        f"SELECT {MEMBER_COLS} FROM members m WHERE m.group_id = $1"
        " AND m.user_id = ANY($2::text[])", group_id, list(dict.fromkeys(user_ids)))
    return {r["user_id"]: rows.member(r) for r in found}


class PostgresGroupStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db

    @classmethod
    async def open(cls, settings: Settings) -> PostgresGroupStore:
        return cls(await open_service_database(settings, SERVICE))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresGroupTx]:
        async with self.db.transaction() as conn:
            yield PostgresGroupTx(conn)

    async def get_group(self, group_id: str) -> GroupRow | None:
        return rows.group(await self.db.fetchrow(
            f"SELECT {GROUP_COLS} FROM groups g WHERE g.id = $1", group_id))

    async def get_member(self, group_id: str, user_id: str) -> MemberRow | None:
        return rows.member(await self.db.fetchrow(
            f"SELECT {MEMBER_COLS} FROM members m WHERE m.group_id = $1 AND m.user_id = $2",
            group_id, user_id))

    async def get_members(self, group_id: str, user_ids: Sequence[str]) -> dict[str, MemberRow]:
        return await _members_among(self.db.fetch, group_id, user_ids)

    async def list_groups_of(self, user_id: str, *, before_seq: int | None,
                             limit: int) -> list[MembershipView]:
        sql = (f"SELECT {GROUP_COLS}, {MEMBER_COLS} FROM members m"
               " JOIN groups g ON g.id = m.group_id WHERE m.user_id = $1")
        params: list = [user_id]
        if before_seq is not None:
            params.append(before_seq)
            sql += f" AND m.seq < ${len(params)}"
        params.append(limit)
        sql += f" ORDER BY m.seq DESC LIMIT ${len(params)}"
        return [MembershipView(rows.group(r), rows.member(r))
                for r in await self.db.fetch(sql, *params)]

    async def list_members(self, group_id: str, *, after_seq: int | None,
                           limit: int) -> list[MemberRow]:
        sql = f"SELECT {MEMBER_COLS} FROM members m WHERE m.group_id = $1"
        params: list = [group_id]
        if after_seq is not None:
            params.append(after_seq)
            sql += f" AND m.seq > ${len(params)}"
        params.append(limit)
        sql += f" ORDER BY m.seq LIMIT ${len(params)}"
        return [rows.member(r) for r in await self.db.fetch(sql, *params)]

    async def list_usable_invites(self, group_id: str, now: float, *, after_seq: int | None,
                                  limit: int) -> list[InviteRow]:
        sql = f"SELECT {INVITE_COLS} FROM invites WHERE group_id = $1 AND {_USABLE}"
        params: list = [group_id, now]
        if after_seq is not None:
            params.append(after_seq)
            sql += f" AND seq > ${len(params)}"
        params.append(limit)
        sql += f" ORDER BY seq LIMIT ${len(params)}"
        return [rows.invite(r) for r in await self.db.fetch(sql, *params)]

    # the relay

    async def pending_groups(self, limit: int) -> list[str]:
        found = await self.db.fetch(
            "SELECT group_id, min(seq) AS first FROM pending_changes GROUP BY group_id"
            " ORDER BY first LIMIT $1", limit)
        return [r["group_id"] for r in found]

    async def pending_changes(self, group_id: str, limit: int) -> list[PendingChange]:
        found = await self.db.fetch(
            f"SELECT {CHANGE_COLS} FROM pending_changes WHERE group_id = $1 ORDER BY seq"
            " LIMIT $2", group_id, limit)
        return [rows.change(r) for r in found]

    async def acquire_relay_lease(self, group_id: str, holder: str, now: float,
                                  until: float) -> bool:
        status = await self.db.execute(
            "INSERT INTO relay_leases (group_id, holder, expire_time) VALUES ($1, $2, $3)"
            " ON CONFLICT (group_id) DO UPDATE SET holder = excluded.holder,"
            " expire_time = excluded.expire_time"
            " WHERE relay_leases.holder = excluded.holder OR relay_leases.expire_time <= $4",
            group_id, holder, until, now)
        return status == "INSERT 0 1"

    async def complete_change(self, seq: int) -> None:
        await self.db.execute("DELETE FROM pending_changes WHERE seq = $1", seq)

    async def release_relay_lease(self, group_id: str, holder: str) -> None:
        await self.db.execute("DELETE FROM relay_leases WHERE group_id = $1 AND holder = $2",
                              group_id, holder)

    async def close(self) -> None:
        await self.db.close()
