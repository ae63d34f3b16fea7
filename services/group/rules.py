"""The group rules that need no state: who may do what to whom, who inherits ownership, and
whether an invite still works. Pure functions, so every case is a one-line unit test; the
domain (domain.py) applies them inside its transactions."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from services.group.store import InviteRow, MemberRow, Role


def is_admin(role: Role) -> bool:
    """OWNER or ADMIN: manages members, invites and settings."""
    return role in (Role.OWNER, Role.ADMIN)


def removal_refusal(actor: Role, target: Role, is_self: bool) -> str | None:
    """Why `actor` may not remove a member holding `target`, as an ErrorInfo reason; None if
    it may. Owner > admin > member: admins remove plain members, only the owner removes
    admins, nobody removes the owner, and leaving is LeaveGroup's job."""
    if not is_admin(actor):
        return "ADMIN_REQUIRED"
    if is_self:
        return "USE_LEAVE_GROUP"
    if target is Role.OWNER:
        return "CANNOT_REMOVE_OWNER"
    if target is Role.ADMIN and actor is not Role.OWNER:
        return "OWNER_MANAGES_ADMINS"
    return None


def role_change_refusal(actor: Role, target: Role, new_role: Role, is_self: bool) -> str | None:
    """Why `actor` may not give `new_role` to a member holding `target`; None if it may.
    Only the owner changes roles, and there is always exactly one owner: the owner cannot
    step down except by handing OWNER to someone else."""
    if actor is not Role.OWNER:
        return "OWNER_REQUIRED"
    if is_self and new_role is not Role.OWNER:
        return "OWNER_MUST_TRANSFER"
    return None


def choose_successor(members: Sequence[MemberRow], leaving_user: str,
                     requested: str | None = None) -> MemberRow | None:
    """Who becomes owner when `leaving_user` (the owner) leaves: `requested` if it is
    another member, otherwise the longest-standing ADMIN, otherwise the longest-standing
    MEMBER; None when nobody else is left. "Longest-standing" is the membership that began
    first (lowest seq), whatever roles it held since."""
    others = sorted((m for m in members if m.user_id != leaving_user), key=lambda m: m.seq)
    chosen = next((m for m in others if m.user_id == requested), None) if requested else None
    return (chosen or next((m for m in others if m.role is Role.ADMIN), None)
            or (others[0] if others else None))


def invite_refusal(invite: InviteRow, now: float) -> str | None:
    """Why a join with this invite is refused (an ErrorInfo reason), None if it works."""
    if invite.expired(now):
        return "INVITE_EXPIRED"
    if invite.used_up:
        return "INVITE_USED_UP"
    return None


def token_hash(token: str) -> bytes:
    """Invite tokens carry >= 128 random bits, so a plain SHA-256 is enough to make a leaked
    table useless (no password-style stretching needed) and lets a join find its invite by
    an indexed equality lookup."""
    return hashlib.sha256(token.encode()).digest()


def etag(group_id: str, revision: int) -> str:
    """AIP-154 etag: opaque, changes with every revision of the Group resource."""
    digest = hashlib.sha256(f"{group_id}:{revision}".encode()).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
