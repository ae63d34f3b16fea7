"""The storage interface the group domain depends on, and the rows it exchanges.

Reads that need no consistency with a write go through `GroupStore`; everything that writes,
and every read a write decision rests on (roles, counts, invite uses), runs inside
`async with store.transaction() as tx:` on a `GroupTx`, which commits when the block ends and
rolls back on any exception (never a partial write). Transactions are serialisable with
respect to each other (SQLite: BEGIN IMMEDIATE on one writer; PostgreSQL: the adapter locks
the group row `FOR UPDATE` first in every transaction that changes a group, and uses the
compare-and-set statements the docstrings name).

Times are wall-clock epoch seconds (float). Ids are the bare UUIDs, not resource names."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from google.protobuf.message import Message


class Role(enum.IntEnum):
    """Same numbers as zynk.group.v1.Role; a lower number is a higher rank."""

    OWNER = 1
    ADMIN = 2
    MEMBER = 3


@dataclasses.dataclass(frozen=True, slots=True)
class GroupRow:
    id: str
    display_name: str
    description: str
    discoverable: bool
    owner_id: str
    create_time: float
    update_time: float
    revision: int = 1  # bumped on every change to what the Group resource shows
    member_count: int = 0  # derived on read; ignored on write


@dataclasses.dataclass(frozen=True, slots=True)
class MemberRow:
    group_id: str
    user_id: str
    role: Role
    join_time: float
    added_by: str = ""  # user id, "" for the creator and joins by invite
    invite_id: str = ""  # the invite used to join, if any
    seq: int = 0  # assigned by the store on insert: the order memberships began


@dataclasses.dataclass(frozen=True, slots=True)
class InviteRow:
    id: str
    group_id: str
    token_hash: bytes  # SHA-256 of the token; the token itself is never stored
    creator_id: str
    create_time: float
    expire_time: float
    max_uses: int  # 0: unlimited until expiry
    use_count: int = 0
    seq: int = 0  # assigned by the store on insert

    @property
    def used_up(self) -> bool:
        return self.max_uses != 0 and self.use_count >= self.max_uses

    def expired(self, now: float) -> bool:
        return self.expire_time <= now

    def usable(self, now: float) -> bool:
        return not self.expired(now) and not self.used_up


@dataclasses.dataclass(frozen=True, slots=True)
class PendingChange:
    """A membership change messaging has not accepted yet: the serialised
    ApplyGroupMembershipChangeRequest, relayed as is (so retries carry the same change_id)."""

    change_id: str
    group_id: str
    request: bytes
    create_time: float
    seq: int = 0  # assigned by the store: the relay order within a group


class GroupTx(Protocol):
    """Operations inside one write transaction."""

    # groups
    async def get_group(self, group_id: str) -> GroupRow | None:
        """With member_count. PostgreSQL: `SELECT ... FOR UPDATE`, which serialises every
        transaction that changes this group."""

    async def insert_group(self, group: GroupRow) -> None: ...

    async def update_group(self, group: GroupRow) -> None:
        """Write display_name, description, discoverable, owner_id, update_time and
        revision of the existing row `group.id`."""

    async def delete_group(self, group_id: str) -> None:
        """Delete the group with its members and invites (its pending changes stay)."""

    async def count_owned_groups(self, user_id: str) -> int:
        """Groups `user_id` owns. Until this transaction ends, other transactions counting
        for the same user wait (PostgreSQL: an advisory lock on the user), so a count then
        an insert can never exceed a limit."""

    # members
    async def get_member(self, group_id: str, user_id: str) -> MemberRow | None: ...

    async def get_members(self, group_id: str, user_ids: Sequence[str]) -> dict[str, MemberRow]:
        """The members among `user_ids`, by user id (non-members are absent)."""

    async def list_all_members(self, group_id: str) -> list[MemberRow]:
        """Every member, in seq order (oldest membership first)."""

    async def list_admins(self, group_id: str) -> list[str]:
        """User ids of the OWNER and ADMINs, in seq order."""

    async def insert_members(self, members: Sequence[MemberRow]) -> list[MemberRow]:
        """Insert in the given order; returns them with `seq` assigned (increasing)."""

    async def delete_members(self, group_id: str, user_ids: Sequence[str]) -> int:
        """How many of `user_ids` were members (and are now removed)."""

    async def set_role(self, group_id: str, user_id: str, role: Role) -> None: ...

    # invites
    async def insert_invite(self, invite: InviteRow) -> InviteRow:
        """Returns it with `seq` assigned."""

    async def get_invite(self, group_id: str, invite_id: str) -> InviteRow | None: ...

    async def get_invite_by_token_hash(self, token_hash: bytes) -> InviteRow | None:
        """PostgreSQL: locks the invite's group (as `get_group` does) before reading the
        invite, so a join sees every change committed to that group before it."""

    async def count_usable_invites(self, group_id: str, now: float) -> int: ...

    async def delete_invite(self, invite_id: str) -> None: ...

    async def use_invite(self, invite_id: str, now: float) -> bool:
        """Compare-and-set: count one use if the invite is still usable at `now`; False (and
        no write) otherwise. One statement (`UPDATE ... SET use_count = use_count + 1 WHERE
        id = ? AND expire_time > ? AND (max_uses = 0 OR use_count < max_uses)`), so
        concurrent joins can never exceed max_uses."""

    async def purge_invites(self, group_id: str, expired_before: float) -> int:
        """Delete the group's invites that expired before `expired_before`."""

    # relay and events (written in the same transaction as the change they describe)
    async def add_pending_change(self, change: PendingChange) -> None: ...

    async def add_event(self, topic: str, key: str, payload: Message, event_id: str) -> None:
        """Publish `payload` on `topic` once this transaction commits (never if it rolls
        back); `event_id` is the id consumers deduplicate on."""


@dataclasses.dataclass(frozen=True, slots=True)
class MembershipView:
    """A group seen by one of its members."""

    group: GroupRow
    member: MemberRow


class GroupStore(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[GroupTx]: ...

    async def get_group(self, group_id: str) -> GroupRow | None:
        """With member_count."""

    async def get_member(self, group_id: str, user_id: str) -> MemberRow | None: ...

    async def get_members(self, group_id: str, user_ids: Sequence[str]) -> dict[str, MemberRow]:
        """The members among `user_ids`, by user id (non-members are absent)."""

    async def list_groups_of(self, user_id: str, *, before_seq: int | None,
                             limit: int) -> list[MembershipView]:
        """The user's groups, most recent membership first (member seq descending),
        strictly before `before_seq`."""

    async def list_members(self, group_id: str, *, after_seq: int | None,
                           limit: int) -> list[MemberRow]:
        """In seq order, strictly after `after_seq`."""

    async def list_usable_invites(self, group_id: str, now: float, *, after_seq: int | None,
                                  limit: int) -> list[InviteRow]:
        """Invites usable at `now` (neither expired nor used up), in seq order."""

    # the relay
    async def pending_groups(self, limit: int) -> list[str]:
        """Groups with pending changes, the one with the oldest change first."""

    async def pending_changes(self, group_id: str, limit: int) -> list[PendingChange]:
        """The group's pending changes in seq order."""

    async def acquire_relay_lease(self, group_id: str, holder: str, now: float,
                                  until: float) -> bool:
        """Take (or extend) the right to relay the group's changes until `until`: True if
        nobody else holds an unexpired lease. One upsert with a condition, so two relays
        (replicas) never both get it."""

    async def complete_change(self, seq: int) -> None:
        """Messaging accepted the change: forget it."""

    async def release_relay_lease(self, group_id: str, holder: str) -> None: ...

    async def close(self) -> None: ...
