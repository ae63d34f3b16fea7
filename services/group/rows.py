"""Row <-> dataclass mapping shared by the SQL adapters (sqlite.py, postgres.py): both
schemas have the same columns, and aiosqlite and asyncpg rows are both read by name."""

from __future__ import annotations

from services.group.store import GroupRow, InviteRow, MemberRow, PendingChange, Role

# The group's columns, with its member count (the Group resource shows it, and every check
# against max_members reads it).
GROUP_COLS = ("g.id, g.display_name, g.description, g.discoverable, g.owner_id, "
              "g.create_time, g.update_time, g.revision, "
              "(SELECT count(*) FROM members c WHERE c.group_id = g.id) AS member_count")
MEMBER_COLS = "m.seq, m.group_id, m.user_id, m.role, m.added_by, m.invite_id, m.join_time"
INVITE_COLS = ("seq, id, group_id, token_hash, creator_id, create_time, expire_time, "
               "max_uses, use_count")
CHANGE_COLS = "seq, change_id, group_id, request, create_time"


def group(r) -> GroupRow | None:
    if r is None:
        return None
    return GroupRow(id=r["id"], display_name=r["display_name"], description=r["description"],
                    discoverable=bool(r["discoverable"]), owner_id=r["owner_id"],
                    create_time=r["create_time"], update_time=r["update_time"],
                    revision=r["revision"], member_count=r["member_count"])


def member(r) -> MemberRow | None:
    if r is None:
        return None
    return MemberRow(group_id=r["group_id"], user_id=r["user_id"], role=Role(r["role"]),
                     join_time=r["join_time"], added_by=r["added_by"],
                     invite_id=r["invite_id"], seq=r["seq"])


def invite(r) -> InviteRow | None:
    if r is None:
        return None
    return InviteRow(id=r["id"], group_id=r["group_id"], token_hash=bytes(r["token_hash"]),
                     creator_id=r["creator_id"], create_time=r["create_time"],
                     expire_time=r["expire_time"], max_uses=r["max_uses"],
                     use_count=r["use_count"], seq=r["seq"])


def change(r) -> PendingChange:
    return PendingChange(change_id=r["change_id"], group_id=r["group_id"],
                         request=bytes(r["request"]), create_time=r["create_time"],
                         seq=r["seq"])
