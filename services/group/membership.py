"""A read-through cache of each group's state and member list with roles (seed §6.2: group
membership, 10 minutes), in the shared cache (runtime/cache.py: in-process in embedded mode,
Redis shared by every replica in distributed mode).

The rule (also in docs/groups.md, "Membership cache"):
- The cache serves READS only: GetGroup, ListMembers, and the visibility/role check that lets
  a caller see a group's invites or that turns an AddMembers away early. Every operation that
  WRITES decides in its own transaction against the database (domain.py `_visible_in`), never
  on a cached entry, so a removed or demoted member can never act on stale data.
- Every committed change to the group or its members (add, remove, role change, leave, join
  by invite, ownership transfer, settings update, delete) calls `drop` before the RPC
  returns, so the next read on any replica (Redis is shared; embedded mode is one process)
  goes back to the database.
- A read that filled the cache from the database just before a change committed must not
  put its stale copy back after the change dropped it: entries carry a generation token
  read before the database, which `drop` replaces (runtime/cache.py `Generations`).

Keys (under the cache's prefix, `<key_prefix>cache:` on Redis):
  grp:members:<group id>      <token>\n JSON {"group": [...], "members": [[...], ...]}
  grp:members:<group id>#gen  the current generation token, kept for twice the TTL
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

from services.group.store import GroupRow, GroupStore, MemberRow, Role
from services.runtime import logging as zlog
from services.runtime.cache import Cache, Generations
from services.runtime.errors import Unavailable

log = zlog.get("group.membership")

ENTRY_PREFIX = "grp:members:"
# Beyond GroupSettings.max_members (<= 1000): one read gets every member.
ALL_MEMBERS = 100_000


def entry_key(group_id: str) -> str:
    return ENTRY_PREFIX + group_id


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """A group and all its members (seq order), as committed at one point in time."""

    group: GroupRow
    members: tuple[MemberRow, ...]

    def member(self, user_id: str) -> MemberRow | None:
        for m in self.members:
            if m.user_id == user_id:
                return m
        return None


class MembershipCache:
    def __init__(self, store: GroupStore, cache: Cache, ttl_s: float) -> None:
        self._store = store
        self._cache = Generations(cache, ttl_s)

    async def snapshot(self, group_id: str) -> Snapshot | None:
        """The group and its members, from the cache when current, else from the database
        (and then cached). None if the group does not exist (absence is not cached). An
        unreachable cache falls back to the database."""
        key = entry_key(group_id)
        try:
            raw = await self._cache.get(key)
            if raw is not None:
                return _decode(json.loads(raw))
            token = await self._cache.token(key)
        except Unavailable:
            return await self._load(group_id)
        snap = await self._load(group_id)
        if snap is not None:
            try:
                await self._cache.set(key, token, _encode(snap))
            except Unavailable:
                pass
        return snap

    async def drop(self, group_id: str) -> None:
        """After a committed change. If the cache stays unreachable (retried a few times)
        the entry may be served until its TTL ends: logged as an error (docs/groups.md).
        Shielded: a caller cancelled now (client gone, deadline) must not leave the entry."""
        await asyncio.shield(self._drop(group_id))

    async def _drop(self, group_id: str) -> None:
        if not await self._cache.drop_after_commit(entry_key(group_id)):
            log.error("membership cache entry not dropped; it may be stale until its TTL",
                      group_id=group_id)

    async def _load(self, group_id: str) -> Snapshot | None:
        group = await self._store.get_group(group_id)
        if group is None:
            return None
        members = await self._store.list_members(group_id, after_seq=None, limit=ALL_MEMBERS)
        return Snapshot(dataclasses.replace(group, member_count=len(members)), tuple(members))


def _encode(snap: Snapshot) -> bytes:
    g = snap.group
    return json.dumps({
        "group": [g.id, g.display_name, g.description, g.discoverable, g.owner_id,
                  g.create_time, g.update_time, g.revision],
        "members": [[m.user_id, int(m.role), m.join_time, m.added_by, m.invite_id, m.seq]
                    for m in snap.members],
    }, separators=(",", ":")).encode()


def _decode(data: dict) -> Snapshot:
    gid, display_name, description, discoverable, owner_id, ctime, utime, rev = data["group"]
    members = tuple(MemberRow(gid, u, Role(r), jt, added_by=ab, invite_id=iv, seq=seq)
                    for u, r, jt, ab, iv, seq in data["members"])
    return Snapshot(GroupRow(gid, display_name, description, discoverable, owner_id, ctime,
                             utime, revision=rev, member_count=len(members)), members)
