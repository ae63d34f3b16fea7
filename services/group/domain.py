"""The group service's orchestration: each operation checks the caller's rights and the
invariants inside one store transaction, writes the change together with its pending relay row
(and the groups.created event), and after the commit asks the relay to deliver the change.

Nothing here knows about gRPC or SQL: the servicer hands in plain values and the caller's
Principal; the pure rules are in rules.py; errors are the runtime's domain errors.

Who sees what (documented in docs/groups.md):
- Someone who is not a member gets NOT_FOUND for a private group, exactly as for a group that
  does not exist, so group ids cannot be probed. A discoverable group is listed in the
  directory anyway, so there a non-member gets PERMISSION_DENIED.
- A member lacking the role for an operation gets PERMISSION_DENIED (they know the group).

Membership cache (membership.py): reads (GetGroup, ListMembers, the rights check of
ListInvites and the early check of AddMembers) see the group through a read-through cache;
every write decides inside its transaction against the database, never on the cache, and
every committed change drops the group's entry before the RPC returns.

Invariants kept in every transaction: exactly one OWNER among the members; at most
`max_members` members; the last member leaving deletes the group.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

from services.group import names, rules
from services.group.membership import MembershipCache
from services.group.relay import pending_change
from services.group.store import (
    GroupRow,
    GroupStore,
    GroupTx,
    InviteRow,
    MemberRow,
    MembershipView,
    Role,
)
from services.runtime import logging as zlog
from services.runtime import paging
from services.runtime.cache import Cache, MemoryCache
from services.runtime.config import GroupSettings
from services.runtime.context import Principal
from services.runtime.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from services.runtime.events import envelope
from services.runtime.pbtime import timestamp
from zynk.events.v1 import events_pb2

log = zlog.get("group")

TOPIC_GROUPS_CREATED = "groups.created"
UPDATABLE_FIELDS = ("display_name", "description", "discoverable")
INVITE_DEFAULT_TTL_S = 7 * 24 * 3600
INVITE_MAX_TTL_S = 30 * 24 * 3600
# Expired and used-up invites are kept this long past their expiry so that a holder is told
# "expired"/"used up" rather than "not found"; then they are purged.
INVITE_TOMBSTONE_S = 7 * 24 * 3600
INVITE_TOKEN_BYTES = 24  # 192 random bits, 32 base64url characters


class UserDirectory(Protocol):
    async def existing(self, user_ids: Sequence[str]) -> set[str]:
        """The subset of `user_ids` that are accounts."""


class ChangeRelay(Protocol):
    async def committed(self, group_id: str) -> None:
        """A transaction for `group_id` wrote a pending membership change and committed."""


@dataclasses.dataclass(frozen=True, slots=True)
class GroupView:
    """A group as one member sees it."""

    group: GroupRow
    caller_role: Role


T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str


@dataclasses.dataclass(frozen=True, slots=True)
class CreatedInvite:
    invite: InviteRow
    token: str  # returned to the creator once, never stored


@dataclasses.dataclass(frozen=True, slots=True)
class LeaveResult:
    new_owner: str  # user id, "" unless the caller was the owner and someone is left
    group_deleted: bool


@dataclasses.dataclass(frozen=True, slots=True)
class JoinResult:
    view: GroupView
    member: MemberRow


class GroupDomain:
    def __init__(self, store: GroupStore, users: UserDirectory, relay: ChangeRelay,
                 settings: GroupSettings, clock: Callable[[], float] = time.time,
                 cache: Cache | None = None) -> None:
        self._store = store
        self._members = MembershipCache(store, MemoryCache() if cache is None else cache,
                                        settings.membership_cache_ttl_s)
        self._users = users
        self._relay = relay
        self._s = settings
        self._clock = clock

    # -- groups --------------------------------------------------------------------------------

    async def create_group(self, caller: Principal, display_name: str, description: str,
                           discoverable: bool, initial_members: Sequence[str]) -> GroupView:
        """`initial_members` are user refs from `users/{ref}` names (`me` allowed)."""
        others = _resolve_users(caller, initial_members, "initial_members")
        others.pop(caller.user_id, None)  # the creator is the owner already
        if 1 + len(others) > self._s.max_members:
            raise _group_full(self._s.max_members)
        await self._require_existing(others, "initial_members")
        now = self._clock()
        group = GroupRow(id=str(uuid.uuid4()), display_name=display_name,
                         description=description, discoverable=discoverable,
                         owner_id=caller.user_id, create_time=now, update_time=now)
        members = [MemberRow(group.id, caller.user_id, Role.OWNER, now)]
        members += [MemberRow(group.id, u, Role.MEMBER, now, added_by=caller.user_id)
                    for u in others]
        async with self._store.transaction() as tx:
            owned = await tx.count_owned_groups(caller.user_id)
            if owned >= self._s.max_owned_groups:
                raise ResourceExhausted(
                    f"you own {owned} groups, the most allowed; delete or hand one over first",
                    reason="TOO_MANY_GROUPS",
                    metadata={"limit": str(self._s.max_owned_groups)})
            await tx.insert_group(group)
            await tx.insert_members(members)
            await tx.add_pending_change(pending_change(
                group.id, caller.user_id, added=[m.user_id for m in members],
                admins=[caller.user_id], now=now))
            event = _created_event(group, len(members))
            await tx.add_event(TOPIC_GROUPS_CREATED, event.partition_key, event,
                               event.metadata.event_id)
        log.info("group created", group_id=group.id, members=len(members))
        await self._relay.committed(group.id)
        return GroupView(dataclasses.replace(group, member_count=len(members)), Role.OWNER)

    async def get_group(self, caller: Principal, group_id: str) -> GroupView:
        group, me = await self._visible(caller, group_id)
        return GroupView(group, me.role)

    async def list_groups(self, caller: Principal, page_size: int,
                          page_token: str) -> Page[MembershipView]:
        limit = paging.page_size(page_size)
        before = _decode_page_token(page_token, "groups", caller.user_id)
        rows = await self._store.list_groups_of(caller.user_id, before_seq=before,
                                                limit=limit + 1)
        return _page(rows, limit, lambda v: _encode_page_token("groups", caller.user_id,
                                                                 v.member.seq))

    async def update_group(self, caller: Principal, group_id: str, etag: str,
                           values: dict[str, object], paths: Sequence[str]) -> GroupView:
        """`values` holds display_name, description and discoverable from the request;
        `paths` says which of them to write (empty: all)."""
        wanted = set(paths) or set(UPDATABLE_FIELDS)
        unknown = wanted - set(UPDATABLE_FIELDS)
        if unknown:  # the contract's rules already refuse these; kept for direct callers
            raise InvalidArgument(
                f"cannot update {', '.join(sorted(unknown))}",
                field_violations=[("update_mask", f"{p!r} cannot be updated")
                                  for p in sorted(unknown)], reason="FIELD_NOT_UPDATABLE")
        if "display_name" in wanted and not values.get("display_name"):
            raise InvalidArgument("display_name must not be empty",
                                  field_violations=[("group.display_name", "required")])
        async with self._store.transaction() as tx:
            group, me = await self._visible_in(tx, caller, group_id)
            _require_admin(me, "change the group's settings")
            _check_etag(group, etag)
            changes = {f: values[f] for f in wanted if values[f] != getattr(group, f)}
            if changes:
                group = dataclasses.replace(group, **changes, revision=group.revision + 1,
                                            update_time=self._clock())
                await tx.update_group(group)
        if changes:
            await self._members.drop(group_id)
        return GroupView(group, me.role)

    async def delete_group(self, caller: Principal, group_id: str, etag: str) -> None:
        async with self._store.transaction() as tx:
            group, me = await self._visible_in(tx, caller, group_id)
            if me.role is not Role.OWNER:
                raise PermissionDenied("only the owner can delete the group",
                                       reason="OWNER_REQUIRED")
            _check_etag(group, etag)
            members = await tx.list_all_members(group_id)
            await tx.delete_group(group_id)
            await tx.add_pending_change(pending_change(
                group_id, caller.user_id, removed=[m.user_id for m in members], deleted=True,
                now=self._clock()))
        log.info("group deleted", group_id=group_id)
        await self._members.drop(group_id)
        await self._relay.committed(group_id)

    # -- members -------------------------------------------------------------------------------

    async def list_members(self, caller: Principal, group_id: str, page_size: int,
                           page_token: str) -> Page[MemberRow]:
        snap = await self._members.snapshot(group_id)
        _check_visible(group_id, snap and snap.group,
                       snap and snap.member(caller.user_id))
        assert snap is not None
        limit = paging.page_size(page_size)
        after = _decode_page_token(page_token, "members", group_id)
        rows = [m for m in snap.members if after is None or m.seq > after][:limit + 1]
        return _page(rows, limit, lambda m: _encode_page_token("members", group_id, m.seq))

    async def add_members(self, caller: Principal, group_id: str,
                          user_refs: Sequence[str]) -> list[MemberRow]:
        wanted = _resolve_users(caller, user_refs, "users")
        # Check rights before asking auth anything, and ask auth outside the transaction
        # (never hold the writer across a network call); the transaction re-checks both.
        _, me = await self._visible(caller, group_id)
        _require_admin(me, "add members")
        present = await self._store.get_members(group_id, list(wanted))
        await self._require_existing({u: i for u, i in wanted.items() if u not in present},
                                     "users")
        now = self._clock()
        async with self._store.transaction() as tx:
            group, me = await self._visible_in(tx, caller, group_id)
            _require_admin(me, "add members")
            present = await tx.get_members(group_id, list(wanted))
            new = [u for u in wanted if u not in present]
            if not new:
                return []
            if group.member_count + len(new) > self._s.max_members:
                raise _group_full(self._s.max_members)
            added = await tx.insert_members([
                MemberRow(group_id, u, Role.MEMBER, now, added_by=caller.user_id) for u in new])
            await self._touch(tx, group, now)
            await tx.add_pending_change(pending_change(
                group_id, caller.user_id, added=new, admins=await tx.list_admins(group_id),
                now=now))
        await self._members.drop(group_id)
        await self._relay.committed(group_id)
        return added

    async def remove_members(self, caller: Principal, group_id: str,
                             user_refs: Sequence[str]) -> int:
        wanted = _resolve_users(caller, user_refs, "users")
        now = self._clock()
        async with self._store.transaction() as tx:
            group, me = await self._visible_in(tx, caller, group_id)
            _require_admin(me, "remove members")
            present = await tx.get_members(group_id, list(wanted))
            targets, refused = [], []
            for user_id in wanted:
                target = present.get(user_id)
                if target is None:
                    continue  # not a member: nothing to do
                why = rules.removal_refusal(me.role, target.role, user_id == caller.user_id)
                if why is not None:
                    refused.append((user_id, why))
                targets.append(user_id)
            if refused:
                raise _removal_refused(refused)
            if not targets:
                return 0
            removed = await tx.delete_members(group_id, targets)
            await self._touch(tx, group, now)
            await tx.add_pending_change(pending_change(
                group_id, caller.user_id, removed=targets,
                admins=await tx.list_admins(group_id), now=now))
        await self._members.drop(group_id)
        await self._relay.committed(group_id)
        return removed

    async def update_member_role(self, caller: Principal, group_id: str, user_ref: str,
                                 role: Role) -> MemberRow:
        target_id = caller.user_id if user_ref == names.ME else user_ref
        now = self._clock()
        async with self._store.transaction() as tx:
            group, me = await self._visible_in(tx, caller, group_id)
            if me.role is not Role.OWNER:
                raise PermissionDenied("only the owner can change roles",
                                       reason="OWNER_REQUIRED")
            target = await tx.get_member(group_id, target_id)
            if target is None:
                raise NotFound(f"{names.member_name(group_id, target_id)} not found",
                               reason="MEMBER_NOT_FOUND")
            why = rules.role_change_refusal(me.role, target.role, role,
                                            target_id == caller.user_id)
            if why is not None:
                raise FailedPrecondition(
                    "the owner cannot step down: give OWNER to another member instead",
                    reason=why)
            if role is target.role:
                return target
            if role is Role.OWNER:
                # Demote first: at no point may two members hold OWNER.
                await tx.set_role(group_id, caller.user_id, Role.ADMIN)
                await tx.set_role(group_id, target_id, Role.OWNER)
                group = dataclasses.replace(group, owner_id=target_id)
                await self._touch(tx, group, now)
            else:
                await tx.set_role(group_id, target_id, role)
            await tx.add_pending_change(pending_change(
                group_id, caller.user_id, admins=await tx.list_admins(group_id), now=now))
        log.info("member role changed", group_id=group_id, role=role.name)
        await self._members.drop(group_id)
        await self._relay.committed(group_id)
        return dataclasses.replace(target, role=role)

    async def leave_group(self, caller: Principal, group_id: str,
                          successor_ref: str | None) -> LeaveResult:
        now = self._clock()
        async with self._store.transaction() as tx:
            group, me = await self._visible_in(tx, caller, group_id)
            new_owner = ""
            if me.role is Role.OWNER:
                members = await tx.list_all_members(group_id)
                if len(members) == 1:
                    await tx.delete_group(group_id)
                    await tx.add_pending_change(pending_change(
                        group_id, caller.user_id, removed=[caller.user_id], deleted=True,
                        now=now))
                    result = LeaveResult("", True)
                else:
                    requested = _resolve_successor(caller, successor_ref)
                    heir = rules.choose_successor(members, caller.user_id, requested)
                    assert heir is not None  # someone else is left
                    await tx.delete_members(group_id, [caller.user_id])
                    await tx.set_role(group_id, heir.user_id, Role.OWNER)
                    await self._touch(tx, dataclasses.replace(group, owner_id=heir.user_id),
                                      now)
                    new_owner = heir.user_id
                    result = LeaveResult(new_owner, False)
            else:
                await tx.delete_members(group_id, [caller.user_id])
                await self._touch(tx, group, now)
                result = LeaveResult("", False)
            if not result.group_deleted:
                await tx.add_pending_change(pending_change(
                    group_id, caller.user_id, removed=[caller.user_id],
                    admins=await tx.list_admins(group_id), now=now))
        log.info("member left", group_id=group_id, group_deleted=result.group_deleted,
                 ownership_passed=bool(new_owner))
        await self._members.drop(group_id)
        await self._relay.committed(group_id)
        return result

    # -- invites -------------------------------------------------------------------------------

    async def create_invite(self, caller: Principal, group_id: str, expire_time: float | None,
                            max_uses: int) -> CreatedInvite:
        now = self._clock()
        if expire_time is None:
            expire_time = now + INVITE_DEFAULT_TTL_S
        elif not now < expire_time <= now + INVITE_MAX_TTL_S:
            # The contract's rule checked this on arrival; the clock may have moved since.
            raise InvalidArgument(
                "expire_time must be in the future and at most 30 days from now",
                field_violations=[("invite.expire_time", "in the future, within 30 days")])
        if not 0 <= max_uses <= 10_000:
            raise InvalidArgument("max_uses must be between 0 and 10000",
                                  field_violations=[("invite.max_uses", "0..10000")])
        token = secrets.token_urlsafe(INVITE_TOKEN_BYTES)
        async with self._store.transaction() as tx:
            _, me = await self._visible_in(tx, caller, group_id)
            _require_admin(me, "create invites")
            await tx.purge_invites(group_id, now - INVITE_TOMBSTONE_S)
            active = await tx.count_usable_invites(group_id, now)
            if active >= self._s.max_active_invites:
                raise ResourceExhausted(
                    f"the group has {active} working invites, the most allowed; revoke some",
                    reason="TOO_MANY_INVITES",
                    metadata={"limit": str(self._s.max_active_invites)})
            invite = await tx.insert_invite(InviteRow(
                id=str(uuid.uuid4()), group_id=group_id, token_hash=rules.token_hash(token),
                creator_id=caller.user_id, create_time=now, expire_time=expire_time,
                max_uses=max_uses))
        return CreatedInvite(invite, token)

    async def list_invites(self, caller: Principal, group_id: str, page_size: int,
                           page_token: str) -> Page[InviteRow]:
        _, me = await self._visible(caller, group_id)
        _require_admin(me, "see invites")
        limit = paging.page_size(page_size)
        after = _decode_page_token(page_token, "invites", group_id)
        rows = await self._store.list_usable_invites(group_id, self._clock(), after_seq=after,
                                                     limit=limit + 1)
        return _page(rows, limit, lambda i: _encode_page_token("invites", group_id, i.seq))

    async def delete_invite(self, caller: Principal, group_id: str, invite_id: str) -> None:
        async with self._store.transaction() as tx:
            _, me = await self._visible_in(tx, caller, group_id)
            _require_admin(me, "revoke invites")
            if await tx.get_invite(group_id, invite_id) is None:
                raise NotFound(f"{names.invite_name(group_id, invite_id)} not found",
                               reason="INVITE_NOT_FOUND")
            await tx.delete_invite(invite_id)

    async def join_group(self, caller: Principal, token: str) -> JoinResult:
        now = self._clock()
        async with self._store.transaction() as tx:
            invite = await tx.get_invite_by_token_hash(rules.token_hash(token))
            group = None if invite is None else await tx.get_group(invite.group_id)
            if invite is None or group is None:
                raise NotFound("no such invite: it was revoked, or never existed",
                               reason="INVITE_NOT_FOUND")
            existing = await tx.get_member(group.id, caller.user_id)
            if existing is not None:
                # A retried join (or a member following a link again) succeeds without
                # spending a use, even if that use was the invite's last.
                return JoinResult(GroupView(group, existing.role), existing)
            why = rules.invite_refusal(invite, now)
            if why is not None:
                raise _invite_refused(why)
            if group.member_count >= self._s.max_members:
                raise _group_full(self._s.max_members)
            if not await tx.use_invite(invite.id, now):
                raise _invite_refused("INVITE_USED_UP")
            (member,) = await tx.insert_members([MemberRow(
                group.id, caller.user_id, Role.MEMBER, now, invite_id=invite.id)])
            group = await self._touch(tx, group, now)
            await tx.add_pending_change(pending_change(
                group.id, caller.user_id, added=[caller.user_id],
                admins=await tx.list_admins(group.id), now=now))
        log.info("member joined by invite", group_id=group.id)
        await self._members.drop(group.id)
        await self._relay.committed(group.id)
        return JoinResult(GroupView(dataclasses.replace(group,
                                                        member_count=group.member_count + 1),
                                    Role.MEMBER), member)

    # -- helpers -------------------------------------------------------------------------------

    async def _visible(self, caller: Principal, group_id: str) -> tuple[GroupRow, MemberRow]:
        """For reads only (through the membership cache); writes use `_visible_in`."""
        snap = await self._members.snapshot(group_id)
        if snap is None:
            return _check_visible(group_id, None, None)
        return _check_visible(group_id, snap.group, snap.member(caller.user_id))

    @staticmethod
    async def _visible_in(tx: GroupTx, caller: Principal,
                          group_id: str) -> tuple[GroupRow, MemberRow]:
        group = await tx.get_group(group_id)
        me = None if group is None else await tx.get_member(group_id, caller.user_id)
        return _check_visible(group_id, group, me)

    async def _touch(self, tx: GroupTx, group: GroupRow, now: float) -> GroupRow:
        """The Group resource changed (owner, member count): new revision, new etag."""
        group = dataclasses.replace(group, revision=group.revision + 1, update_time=now)
        await tx.update_group(group)
        return group

    async def _require_existing(self, wanted: dict[str, int], field: str) -> None:
        """`wanted` maps user ids to their index in the request field."""
        if not wanted:
            return
        found = await self._users.existing(list(wanted))
        unknown = [(u, i) for u, i in wanted.items() if u not in found]
        if unknown:
            raise InvalidArgument(
                "no such user: " + ", ".join(names.user_name(u) for u, _ in unknown),
                field_violations=[(f"{field}[{i}]", f"{names.user_name(u)} does not exist")
                                  for u, i in unknown],
                reason="USER_NOT_FOUND")


# -- rules that need no state --------------------------------------------------------------


def _check_visible(group_id: str, group: GroupRow | None,
                   me: MemberRow | None) -> tuple[GroupRow, MemberRow]:
    if group is None or (me is None and not group.discoverable):
        raise NotFound(f"{names.group_name(group_id)} not found", reason="GROUP_NOT_FOUND")
    if me is None:
        raise PermissionDenied(f"you are not a member of {names.group_name(group_id)}",
                               reason="NOT_A_MEMBER")
    return group, me


def _require_admin(me: MemberRow, what: str) -> None:
    if not rules.is_admin(me.role):
        raise PermissionDenied(f"only the owner and admins can {what}",
                               reason="ADMIN_REQUIRED")


def _check_etag(group: GroupRow, etag: str) -> None:
    if etag and etag != rules.etag(group.id, group.revision):
        raise Aborted("the group changed since you read it; get it again and retry",
                      reason="ETAG_MISMATCH")


def _resolve_users(caller: Principal, refs: Sequence[str], field: str) -> dict[str, int]:
    """User refs (`me` allowed) -> {user id: index of its first mention in `field`}."""
    out: dict[str, int] = {}
    for i, ref in enumerate(refs):
        out.setdefault(caller.user_id if ref == names.ME else ref, i)
    return out


def _resolve_successor(caller: Principal, ref: str | None) -> str | None:
    if not ref:
        return None
    return caller.user_id if ref == names.ME else ref


def _group_full(limit: int) -> FailedPrecondition:
    return FailedPrecondition(f"a group holds at most {limit} members", reason="GROUP_FULL",
                              metadata={"limit": str(limit)})


_REMOVAL_MESSAGES = {
    "USE_LEAVE_GROUP": "to leave the group yourself, use LeaveGroup",
    "CANNOT_REMOVE_OWNER": "nobody can remove the owner",
    "OWNER_MANAGES_ADMINS": "only the owner can remove admins",
    "ADMIN_REQUIRED": "only the owner and admins can remove members",
}


def _removal_refused(refused: list[tuple[str, str]]) -> PermissionDenied:
    reason = refused[0][1]
    users = ", ".join(names.user_name(u) for u, _ in refused)
    return PermissionDenied(f"{_REMOVAL_MESSAGES[reason]} ({users}); nobody was removed",
                            reason=reason, metadata={"users": users})


_INVITE_MESSAGES = {
    "INVITE_EXPIRED": "this invite has expired; ask for a new one",
    "INVITE_USED_UP": "this invite has been used as many times as it allows; ask for a new one",
}


def _invite_refused(reason: str) -> NotFound:
    # NOT_FOUND like an unknown token (the contract's rule); the reason and message tell a
    # holder why, which only someone holding a real token can ever see.
    return NotFound(_INVITE_MESSAGES[reason], reason=reason)


def _page(rows: list[T], limit: int, token_of: Callable[[T], str]) -> Page[T]:
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, token_of(rows[-1]))
    return Page(rows, "")


def _encode_page_token(kind: str, parent: str, seq: int) -> str:
    return paging.encode_token({"k": kind, "p": parent, "s": seq})


def _decode_page_token(token: str, kind: str, parent: str) -> int | None:
    """The keyset position in a token from a previous page of the same listing."""
    if not token:
        return None
    data = paging.decode_token(token)
    seq = data.get("s")
    if (data.get("k") != kind or data.get("p") != parent or not isinstance(seq, int)
            or isinstance(seq, bool)):
        raise paging.invalid_token()
    return seq


def _created_event(group: GroupRow, member_count: int) -> events_pb2.EventEnvelope:
    return envelope(
        "group", TOPIC_GROUPS_CREATED, group.id, group.create_time,
        group_created=events_pb2.GroupCreated(
            group=names.group_name(group.id), creator=names.user_name(group.owner_id),
            conversation=names.conversation_name(group.id),
            display_name=group.display_name, discoverable=group.discoverable,
            member_count=member_count, create_time=timestamp(group.create_time)))
